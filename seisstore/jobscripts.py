"""Bash job scripts of a campaign: ``start.bash`` and the OAR and Slurm array wrappers.

``start.bash`` is the seed's per-job script made safe to kill: it takes one
``param.txt`` line as arguments, works in a private directory removed by a
trap (best-effort jobs are killed at any time), fetches the code and inputs
with ``secure-iget -f`` from the campaign's iRODS collection and runs the
job script with the line's integers. The OAR and Slurm scripts run the same
``start.bash`` from the campaign directory, so one campaign runs unchanged
under CiGri, a plain OAR cluster or a Slurm cluster.

Every generated value is validated and embedded with :func:`shlex.quote`;
the scripts re-check their arguments before using them.
"""
from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

from seisstore.jdl import Cluster, check_collection, check_shell_line
from seisstore.params import check_name

__all__ = ["oar_script", "slurm_script", "start_bash"]


def _array(words: Sequence[str], what: str) -> str:
    if not words:
        raise ValueError(f"{what} must not be empty")
    for word in words:
        if not isinstance(word, str) or not word or "\n" in word or "\x00" in word:
            raise ValueError(f"{what} has a bad word {word!r}")
    return "(" + " ".join(shlex.quote(w) for w in words) + ")"


def _exports(environment: Mapping[str, str]) -> list[str]:
    lines = []
    for name, value in sorted(environment.items()):
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
            raise ValueError(f"bad environment variable name {name!r}")
        if "\n" in value:
            raise ValueError(f"environment variable {name} has a newline")
        lines.append(f"export {name}={shlex.quote(value)}")
    return lines


def start_bash(
    name: str,
    irods_collection: str,
    job_script: str,
    inputs: Sequence[str],
    *,
    interpreter: Sequence[str] = ("python3",),
    setup: Sequence[str] = (),
    fetch_command: Sequence[str] = ("secure-iget", "-f"),
    environment: Mapping[str, str] | None = None,
) -> str:
    """Text of ``start.bash``: ``start.bash <job name> <int>...``.

    ``inputs`` are file names in ``irods_collection`` fetched into the work
    directory (``job_script`` is added if missing); ``setup`` are trusted
    one-line commands such as ``module load python``; ``environment`` is exported to
    the job (the campaign carries its archive and results collections to any cluster). Exit codes: 1 (bad options) for a
    wrong argument count or an unsafe argument, else the job's own.
    """
    check_name(name, "campaign name")
    coll = check_collection(irods_collection)
    check_name(job_script, "job script")
    names = list(dict.fromkeys([job_script, *inputs]))
    for item in names:
        check_name(item, "input file")
    setup_lines = [check_shell_line(line, "setup line") for line in setup]
    lines = [
        "#!/bin/bash",
        f"# start.bash of seisstore campaign {name}: runs one param.txt line.",
        "# usage: start.bash <job name> <n_dates> <idate> <n_stations> <istation> [<jstation>]",
        "set -euo pipefail",
        "",
        f"readonly IRODS_COLL={shlex.quote(coll)}",
        f"readonly JOB_SCRIPT={shlex.quote(job_script)}",
        f"readonly INPUTS={_array(names, 'inputs')}",
        f"readonly FETCH={_array(fetch_command, 'fetch command')}",
        f"readonly RUNNER={_array(interpreter, 'interpreter')}",
        "",
        'if [ "$#" -lt 5 ] || [ "$#" -gt 6 ]; then',
        '    echo "usage: $0 <job name> <n_dates> <idate> <n_stations> <istation>'
        ' [<jstation>]" >&2',
        "    exit 1",
        "fi",
        'job_name="$1"',
        "shift",
        'if [[ ! "$job_name" =~ ^[A-Za-z0-9_.][A-Za-z0-9_.-]*$ ]]; then',
        '    echo "start.bash: unsafe job name: ${job_name}" >&2',
        "    exit 1",
        "fi",
        'for arg in "$@"; do',
        '    if [[ ! "$arg" =~ ^[0-9]+$ ]]; then',
        '        echo "start.bash: job parameter is not a non-negative integer: ${arg}" >&2',
        "        exit 1",
        "    fi",
        "done",
        "",
        *setup_lines,
        *([""] if setup_lines else []),
        'workdir="$(mktemp -d "${TMPDIR:-/tmp}/seisstore.${job_name}.XXXXXX")"',
        "cleanup() {",
        "    cd /",
        '    rm -rf -- "$workdir"',
        "}",
        "trap cleanup EXIT",
        "# best-effort jobs are killed with TERM: leave through the EXIT trap",
        "trap 'exit 143' TERM",
        "trap 'exit 130' INT",
        'cd -- "$workdir"',
        "",
        'for input in "${INPUTS[@]}"; do',
        '    "${FETCH[@]}" "${IRODS_COLL}/${input}" "./${input}"',
        "done",
        "",
        *_exports(environment or {}),
        'export SEISSTORE_JOB_NAME="$job_name"',
        'export SEISSTORE_WORKDIR="$workdir"',
        '"${RUNNER[@]}" "./${JOB_SCRIPT}" "$@"',
        "",
    ]
    return "\n".join(lines)


def oar_script(
    name: str,
    cluster: Cluster,
    *,
    cores: int = 1,
    param_file: str = "param.txt",
    exec_name: str = "start.bash",
    best_effort: bool = True,
) -> str:
    """Text of an OAR array job: ``oarsub -S ./oar_<cluster>.sh`` from the campaign directory.

    OAR passes each ``param_file`` line as the script's arguments
    (``--array-param-file``); ``besteffort`` plus ``idempotent`` makes OAR
    resubmit jobs killed by local demand, like CiGri does, and resubmit an
    idempotent job that ends with exit 99 after running more than 60 s: a
    transient failure of ``start.bash`` (exit 2) waits until the job has run
    61 s (``SEISSTORE_OAR_MIN_RUN``; a back-off the zone needs anyway) and ends
    with 99. OAR has no
    per-array concurrency cap, so ``max_jobs`` only applies under CiGri.
    """
    check_name(name, "campaign name")
    check_name(param_file, "param file")
    check_name(exec_name, "exec file")
    if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
        raise ValueError(f"cores must be a positive int, got {cores!r}")
    resubmit = [
        "# exit 2 (transient): OAR resubmits an idempotent job ending with 99 after more than 60 s",
        'if [ "$status" -eq 2 ]; then',
        '    echo "seisstore: $1: transient failure (exit 2), exit 99 so that OAR resubmits it" >&2',
        '    while [ "$SECONDS" -le "${SEISSTORE_OAR_MIN_RUN:-61}" ]; do sleep 1; done',
        "    exit 99",
        "fi",
    ] if best_effort else []
    lines = [
        "#!/bin/bash",
        f"#OAR -n {name}",
        f"#OAR -l /core={cores},walltime={cluster.walltime}",
        f"#OAR --project {cluster.project}",
        *(["#OAR -t besteffort", "#OAR -t idempotent"] if best_effort else []),
        f"#OAR --array-param-file {param_file}",
        f"#OAR -O {name}.%jobid%.out",
        f"#OAR -E {name}.%jobid%.err",
        f"# seisstore campaign {name}: submit from the campaign directory with",
        "#   oarsub -S ./<this file>",
        "set -uo pipefail",
        'cd -- "${OAR_WORKDIR:-.}" || exit 1',
        f'bash ./{shlex.quote(exec_name)} "$@"',
        "status=$?",
        *resubmit,
        'exit "$status"',
        "",
    ]
    return "\n".join(lines)


def slurm_script(
    name: str,
    cluster: Cluster,
    n_jobs: int,
    *,
    cores: int = 1,
    param_file: str = "param.txt",
    exec_name: str = "start.bash",
    best_effort: bool = True,
    max_requeues: int = 10,
) -> str:
    """Text of a Slurm array job: ``sbatch [-p PARTITION] slurm_<cluster>.sh`` from the campaign directory.

    What Slurm offers does the work: ``--array=1-N`` where task ``k`` runs line ``k``
    of ``param_file`` (``SLURM_ARRAY_TASK_ID``), ``max_jobs`` is the array's ``%``
    limit (tasks running at once), each task writes ``<name>_<array job>_<task>.out``
    (appended to when the task runs again) and, if ``best_effort``, ``--requeue``
    lets Slurm requeue a task that preemption or a node failure killed. A task
    whose ``start.bash`` ends with exit 2 (``secure-iget``/``secure-iput``: transient,
    resubmit later) requeues itself with ``scontrol requeue $SLURM_JOB_ID`` (Slurm
    holds it back ``cred_expire`` + 1 s, 121 s by default) until it has been restarted
    ``max_requeues`` times (``SEISSTORE_MAX_REQUEUES`` overrides it at run time);
    then, and for every other code, the task ends with ``start.bash``'s exit code.
    Sites cap arrays at ``MaxArraySize`` (1001 by default, so N <= 1000): choose
    ``n_dates`` x ``n_stations`` below it or split the file.
    """
    check_name(name, "campaign name")
    check_name(param_file, "param file")
    check_name(exec_name, "exec file")
    for label, value, least in (("n_jobs", n_jobs, 1), ("cores", cores, 1), ("max_requeues", max_requeues, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{label} must be an int >= {least}, got {value!r}")
    throttle = f"%{cluster.max_jobs}" if cluster.max_jobs is not None else ""
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={name}",
        f"#SBATCH --array=1-{n_jobs}{throttle}",
        f"#SBATCH --time={cluster.walltime}",
        f"#SBATCH --account={cluster.project}",
        "#SBATCH --ntasks=1",
        f"#SBATCH --cpus-per-task={cores}",
        f"#SBATCH --output={name}_%A_%a.out",
        "#SBATCH --open-mode=append",
        *(["#SBATCH --requeue"] if best_effort else []),
        f"# seisstore campaign {name}: submit from the campaign directory with",
        "#   sbatch [--partition=<best-effort partition>] <this file>",
        "# Task k runs line k of the param file; exit 2 of start.bash (transient) requeues the task.",
        "set -uo pipefail",
        'cd -- "${SLURM_SUBMIT_DIR:-.}" || exit 1',
        'task="${SLURM_ARRAY_TASK_ID:-}"',
        'if [[ ! "$task" =~ ^[1-9][0-9]*$ ]]; then',
        '    echo "not running as a Slurm array task (SLURM_ARRAY_TASK_ID=${task})" >&2',
        "    exit 1",
        "fi",
        f'line="$(sed -n "${{task}}p" {shlex.quote(param_file)})"',
        'if [ -z "$line" ]; then',
        f'    echo "no line ${{task}} in {param_file}" >&2',
        "    exit 1",
        "fi",
        'read -r -a args <<< "$line"',
        f'bash ./{shlex.quote(exec_name)} "${{args[@]}}"',
        "status=$?",
        f'max_requeues="${{SEISSTORE_MAX_REQUEUES:-{max_requeues}}}"',
        'if [ "$status" -eq 2 ] && [ "${SLURM_RESTART_COUNT:-0}" -lt "$max_requeues" ]; then',
        '    echo "seisstore: ${args[0]} (task ${task}): transient failure (exit 2), requeued after'
        ' ${SLURM_RESTART_COUNT:-0} restarts" >&2',
        '    scontrol requeue "${SLURM_JOB_ID}" || echo "seisstore: scontrol requeue failed" >&2',
        "fi",
        'exit "$status"',
        "",
    ]
    return "\n".join(lines)
