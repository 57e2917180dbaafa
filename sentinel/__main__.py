from sentinel.cli.main import run

run()
