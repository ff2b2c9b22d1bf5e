from training.job.cli import main

raise SystemExit(main())
