"""Risk model: forecast labels, episode splits, LSTM training, baselines, evaluation, ONNX export."""
