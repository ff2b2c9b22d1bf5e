from training.job.cli import main, parse_args

raise SystemExit(main(parse_args()))
