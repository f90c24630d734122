"""The names of the files in a run directory: the one place that knows them.

RUN/
  config.yaml  owner.json  status.json  job.lock  spotcheck.lock  heartbeat  current_round.json  history.json  logs/<job>.log
  rounds/003/  space.yaml  supernet.ckpt  last.ckpt  metrics.csv  candidates.csv  search.json
               fitness.csv  importance.csv  projection.csv  decisions.json
               spotcheck.csv  spotcheck_runs.csv  spotcheck.json
  final/<arch-key>/  arch.yaml  weights.pt  metrics.json  metrics.csv  seeds.csv  export.json
                     model.py  model.onnx  model.pt2  example.pt  model_card.md
  cluster/<group>/  jobs.json  <slurm-id>_<task>_log.out|err  (submitit's files)  ckpt/   cluster/cancelled/<slurm-id>
"""

# the run
CONFIG = "config.yaml"  # the resolved config of the run
STATUS = "status.json"  # what the current (or last) job is doing
LOCK = "job.lock"  # held by the one job that may write
SPOTCHECK_LANE = "spotcheck"  # the side job of a spot check
SIDE_LOCKS = {SPOTCHECK_LANE: "spotcheck.lock"}  # jobs beside the main one, one of each kind (they write only their files)
TRACKING = "tracking"  # the experiment trackers' files (trainer.logger): csv/, tensorboard/, mlflow.db
HEARTBEAT = "heartbeat"  # names the lock holder (host, pid); touched by it every few seconds
CURRENT_ROUND = "current_round.json"  # the round the analyst is on (undo keeps later rounds' files)
HISTORY = "history.json"  # every decision, undo and redo, in order
QUEUE = "ui/queue.json"  # the app's queue of retrain jobs
QUEUE_CURRENT = "ui/queue_current.json"  # the queue's item started last (which architecture is training)
OWNER = "owner.json"  # lab server: who owns the run and whether it is shared read-only with everyone logged in

# beside the runs (in the runs root)
JOB_QUEUE = ".jobs"  # lab server: the queue of jobs waiting for a free slot, one file each, oldest first

# a round (rounds/003/)
SPACE = "space.yaml"  # the round's search space, after the previous round's decisions
SUPERNET = "supernet.ckpt"  # the trained supernet of the round
LAST_CKPT = "last.ckpt"  # the latest epoch checkpoint (to resume a training)
TRAINING_DIR = "lightning"  # where a training keeps last.ckpt (rounds/k/lightning/, final/<key>/lightning/<seed>/)
TRAIN_METRICS = "metrics.csv"  # one row per epoch of a training
CANDIDATES = "candidates.csv"  # every scored candidate of the round
SEARCH_STATE = "search.json"  # strategy and target of the round's last search (to resume it)
FITNESS = "fitness.csv"  # fitness per component with intervals
IMPORTANCE = "importance.csv"  # importance per stage
PROJECTION = "projection.csv"  # 2-D coordinates of the scored candidates
DECISIONS = "decisions.json"  # the decisions taken on this round
SPOTCHECK_PAIRS = "spotcheck.csv"  # one-shot against standalone accuracy per checked candidate
SPOTCHECK_RUNS = "spotcheck_runs.csv"  # one row per standalone training of a spot check
SPOTCHECK_SUMMARY = "spotcheck.json"  # the spot check's verdict and its numbers

# a retrained architecture (final/<arch-key>/)
ARCH = "arch.yaml"  # the architecture, its space and the data it expects
WEIGHTS = "weights.pt"  # the best seed's weights (a plain state dict)
FINAL_METRICS = "metrics.json"  # standalone accuracies, costs, seeds
SEEDS = "seeds.csv"  # one row per seed trained
EXPORT = "export.json"  # exported files, their checks and versions
MODEL_PY = "model.py"  # standalone PyTorch source of the network
ONNX = "model.onnx"
PT2 = "model.pt2"  # torch.export program
EXAMPLE = "example.pt"  # a few raw input samples and the expected outputs
CARD = "model_card.md"

# remote jobs (cluster.backend: slurm): one folder per group of jobs (a spot check, a retrain, a supernet)
CLUSTER_DIR = "cluster"  # RUN/cluster/<group>/: submitit's folder (scripts, logs, results) and jobs.json
CLUSTER_JOBS = "jobs.json"  # the group's jobs as the submitting process last saw them (the app reads it)
CLUSTER_CANCELLED = "cancelled"  # RUN/cluster/cancelled/<slurm-id>: cancelled from the app (not resubmitted)
