"""Run one shard of a profile (its models' whole chain) before a deadline; see README "Reference results".

    python scripts/gpu_shard.py SHARD --minutes M [--params params.yaml] [--one-by-one]

Groups come from ``diffbench.plan.shard_groups``: setup, the models (training, reference classifiers and
noisy classifiers, started side by side unless ``--one-by-one``: each stage's own dvc.yaml command, then
``dvc commit`` records them in dvc.lock exactly as ``dvc repro`` would; a dataset's real-data floor runs
right after its reference classifier, while the U-Nets still train), then the tables' stages
(generate/score pairs table by table, the ELBO): ``--runners`` in-process stage runners side by side
(:mod:`diffbench.stage_runner`: a model, Inception and the classifiers loaded and compiled once per
runner), which claim the units of work from one list, units of a model they have loaded first, so none
idles while another has work. The list is the tables' priority order with its long poles first
(``diffbench.plan.long_poles_first``: DDPM-1000 no longer runs alone at the end). Their finished stages
are recorded every 30 s while they run, by :mod:`diffbench.dvc_commit` (``dvc commit --force`` with
dvc.yaml parsed once and one dvc.lock write for all the stages: ``dvc commit`` does both once per stage,
and in the fifth MNIST lease its commits fell behind four runners, so the last one ran for ~3 minutes
after the last stage had ended; a commit also holds up the deadline check). ``--dvc-repro-tables`` runs
them with ``dvc repro`` instead, a process per stage. At the deadline whatever runs gets SIGINT: finished stages are recorded, an
interrupted one is not, so the report shows what is missing and a later run resumes (current stages are
skipped). Writes ``shard-logs/<group, chain or runner>.log`` and ``shard-logs/timeline.tsv`` (group,
stages, start, seconds, exit status).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diffbench.config import load_params  # noqa: E402
from diffbench.records import SHARED_ENV  # noqa: E402
from diffbench.staleness import Lock  # noqa: E402
from diffbench.plan import check_plan, long_poles_first, shard_groups  # noqa: E402
from diffbench.stage_runner import stage_commands  # noqa: E402

LOGS = Path("shard-logs")
GRACE_S = 10  # after SIGINT, before SIGKILL
DVC = [sys.executable, "-m", "dvc"]  # this interpreter's DVC: a `dvc` script on PATH may name another Python
COMMIT_EVERY_S = 30  # how often the tables' finished stages are recorded while the runners go on
POLL_S = 1.0  # how often the tables group looks whether its runners have ended (was: every COMMIT_EVERY_S)
MODEL_GROUPS = ("setup", "models")  # what the tables need (the models group holds the floors): a failure stops


def stale(stages: list[str]) -> list[str]:
    """The stages that must run: those dvc.lock lacks or whose locked deps or outs are missing here (all of
    them on a bare machine, found in milliseconds), and those `dvc status` does not call current. `dvc
    status` of the MNIST shard's 87 table stages on a bare machine ran for over 2 minutes in the third lease."""
    surely = set(missing_files(stages, Lock(".").stages))
    rest = [stage for stage in stages if stage not in surely]
    if rest:
        out = subprocess.run([*DVC, "status", "--json", *rest], capture_output=True, text=True)
        report = json.loads(out.stdout or "{}") if out.returncode == 0 else {s: "unknown" for s in rest}
        surely.update(s for s in rest if s in report or any(k.endswith(":" + s) for k in report))
    return [stage for stage in stages if stage in surely]


def missing_files(stages: list[str], lock: dict) -> list[str]:
    """The stages without a dvc.lock entry, or with a locked dependency or output not in the workspace."""
    return [stage for stage in stages if stage not in lock or any(
        not Path(item["path"]).exists() for key in ("deps", "outs") for item in lock[stage].get(key, []))]


def launch(args: list[str] | str, log: Path, env: dict | None = None) -> subprocess.Popen:
    """A command in its own process group (so a deadline stops it and every process it started)."""
    return subprocess.Popen(args, shell=isinstance(args, str), stdout=open(log, "a"), stderr=subprocess.STDOUT,
                            start_new_session=True, env=None if env is None else os.environ | env)


def finish(process: subprocess.Popen, deadline: float) -> int:
    """Wait until it ends or the deadline passes (then SIGINT to its group, then SIGKILL); its exit status."""
    try:
        return process.wait(timeout=max(1.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        print("[gpu_shard] stopped at the deadline", flush=True)
        return 124


def side_by_side(chains: list[list[str]], deadline: float) -> int:
    """Each chain (stages one after another, each its own dvc.yaml command) in parallel with the others,
    then `dvc commit` of the stages that succeeded."""
    done_file = LOGS / "done-models.txt"
    done_file.unlink(missing_ok=True)
    processes = {}
    commands = stage_commands([stage for chain in chains for stage in chain])  # one DVC index, not one per stage
    for chain in chains:
        steps = [f"{commands[stage]} && echo {shlex.quote(stage)} >> {shlex.quote(str(done_file))}"
                 for stage in chain]
        processes[chain[0]] = launch(" && ".join(f"({step})" for step in steps),
                                     LOGS / f"{chain[0].replace('@', '_')}.log")
    status = [finish(process, deadline) for process in processes.values()]
    done = done_file.read_text().split() if done_file.is_file() else []
    if done:
        subprocess.run(record_command(done), check=True)
    return max(status, default=0)


def record_command(stages: list[str]) -> list[str]:
    """``dvc commit --force STAGES`` with one dvc.lock write in all (diffbench.dvc_commit), not one per stage."""
    return [sys.executable, "-m", "diffbench.dvc_commit", *stages]


def floors_after_classifiers(stages: list[str]) -> list[list[str]]:
    """The models group as chains: each dataset's real-data floor (``reference@d``, which needs the reference
    classifier) right after ``classifier@d``, while the U-Nets still train; other stages alone."""
    chains = [[stage] for stage in stages if not stage.startswith("reference@")]
    for floor in (stage for stage in stages if stage.startswith("reference@")):
        chain = next((c for c in chains if c[0] == floor.replace("reference@", "classifier@", 1)), None)
        if chain is None:
            chains.append([floor])
        else:
            chain.append(floor)
    return chains


def runners(stages: list[str], count: int, deadline: float) -> int:
    """``count`` :mod:`diffbench.stage_runner` processes side by side, sharing the stages as claimed units;
    every ``COMMIT_EVERY_S`` the stages they finished are recorded by ``dvc commit`` while they go on."""
    claims = LOGS / "claims"
    shutil.rmtree(claims, ignore_errors=True)  # a unit claimed by an interrupted run is free again
    workers = {}
    for number in range(1, count + 1):
        done = LOGS / f"done-runner-{number}.txt"
        done.unlink(missing_ok=True)
        command = [sys.executable, "-m", "diffbench.stage_runner", "--done", str(done), "--claims", str(claims),
                   *stages]
        workers[number] = (launch(command, LOGS / f"runner-{number}.log", {SHARED_ENV: str(count)}), done)
    recorded: list[str] = []

    def record_finished() -> None:
        finished = [stage for _, done in workers.values() if done.is_file() for stage in done.read_text().split()]
        new = [stage for stage in finished if stage not in recorded]
        if new and subprocess.run(record_command(new)).returncode == 0:
            recorded.extend(new)

    last_commit = time.time()
    while any(process.poll() is None for process, _ in workers.values()) and time.time() < deadline:
        time.sleep(min(POLL_S, max(0.0, deadline - time.time())))  # the group ends within POLL_S of its runners
        if time.time() - last_commit >= COMMIT_EVERY_S:
            record_finished()  # while the runners go on: at the deadline only the last stages are left to record
            last_commit = time.time()
    status = {number: finish(process, deadline) for number, (process, _) in workers.items()}
    record_finished()
    print(f"[gpu_shard] tables: {len(recorded)} of {len(stages)} stages finished and recorded", flush=True)
    return max(status.values(), default=0)


def floors_with_models(groups: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    """``groups`` with the real-data floors moved into the models group, after the models' stages (each
    floor runs as soon as its dataset's classifier is done, see ``floors_after_classifiers``)."""
    floors = [stage for name, stages in groups if name == "reference" for stage in stages]
    return [(name, stages + floors if name == "models" else stages) for name, stages in groups if name != "reference"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shard")
    parser.add_argument("--minutes", type=float, required=True, help="stop starting and stop running after this")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--one-by-one", action="store_true", help="train the shard's models one after another")
    parser.add_argument("--runners", type=int, default=int(os.environ.get("DIFFBENCH_RUNNERS", 3)),
                        help="in-process stage runners side by side (default: $DIFFBENCH_RUNNERS, else 3)")
    parser.add_argument("--dvc-repro-tables", action="store_true",
                        help="run the tables' stages with `dvc repro`, a process per stage, not in-process runners")
    args = parser.parse_args()
    params = load_params(args.params)
    check_plan(params)
    groups = shard_groups(params, args.shard)
    groups = floors_with_models(groups)
    if not args.dvc_repro_tables:
        head = [group for group in groups if group[0] in MODEL_GROUPS]
        tables = [s for name, stages in groups if name not in MODEL_GROUPS for s in stages]
        groups = head + [("tables", long_poles_first(params, tables, args.runners))]
    start = time.time()
    deadline = start + 60 * args.minutes
    LOGS.mkdir(exist_ok=True)
    timeline = open(LOGS / "timeline.tsv", "a")
    timeline.write("group\tstages\tstart_s\tseconds\texit\n")
    worst = 0
    for name, stages in groups:
        if time.time() >= deadline:
            print(f"[gpu_shard] deadline: {name} and later groups not started", flush=True)
            timeline.write(f"{name}\t{len(stages)}\t-\t-\tnot started\n")
            worst = max(worst, 124)
            continue
        todo = stale(stages)
        began = time.time()
        print(f"[gpu_shard] {name}: {len(todo)} of {len(stages)} stages to run "
              f"({(deadline - began) / 60:.1f} min left)", flush=True)
        if not todo:
            rc = 0
        elif name == "models" and not args.one_by_one:
            rc = side_by_side(floors_after_classifiers(todo), deadline)
        elif name == "tables":
            rc = runners(todo, args.runners, deadline)
        else:
            rc = finish(launch([*DVC, "repro", "--single-item", *todo], LOGS / f"{name}.log"), deadline)
        seconds = time.time() - began
        timeline.write(f"{name}\t{len(todo)}\t{began - start:.0f}\t{seconds:.0f}\t{rc}\n")
        timeline.flush()
        print(f"[gpu_shard] {name}: exit {rc} after {seconds:.0f} s", flush=True)
        worst = max(worst, rc)
        if rc not in (0, 124) and name in MODEL_GROUPS:
            print(f"[gpu_shard] {name} failed: later groups need it; see {LOGS}/", flush=True)
            return rc
    return worst


if __name__ == "__main__":
    sys.exit(main())
