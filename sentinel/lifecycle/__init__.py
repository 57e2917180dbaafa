"""A model's way from training to production: versions, shadow scoring, promotion, the timelocked upgrade."""
