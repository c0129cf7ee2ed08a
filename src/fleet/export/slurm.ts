/**
 * `ghostprep export slurm`: one bash file that is at once the submitter, the
 * job-array task (one shard each) and the merge job.
 *
 *   bash FILE            submit the array (0..N-1) and, after it, the merge job
 *   bash FILE 2,5        submit only these shards again, then the merge job
 *   bash FILE --wait …   also wait for the merge job and exit with its code
 *
 * The shard count N is written into the file (not taken from
 * SLURM_ARRAY_TASK_COUNT), so a re-run of some shards still cuts the same
 * slices. The merge job depends on the array with `afterany`: it then always
 * runs, and itself fails when a shard left no report (a gap) instead of
 * staying pending forever (`afterok` after one failed clone). Pure.
 */
import { GhostprepError } from '../../util/errors.js';
import { auditTarget, checkJob, shardArgs, shardReportName, type FleetJob } from './job.js';
import { bashArray, checkDirectiveValue, shQuote } from './shell.js';

export interface SlurmExportOptions {
  readonly job: FleetJob;
  /** array tasks = shards */
  readonly tasks: number;
  /** array throttle `%M`: tasks running at once (unset: as many as Slurm allows) */
  readonly maxParallel?: number;
  /** reports/ and logs/ go here (absolute) */
  readonly outputDir: string;
  /** the ghostprep command on the compute nodes, as words: ['ghostprep'] or ['/usr/bin/node', '/opt/ghostprep/dist/src/cli/main.js'] */
  readonly ghostprep: readonly string[];
  readonly jobName?: string;
  readonly partition?: string;
  readonly account?: string;
  readonly time?: string;
  readonly cpusPerTask?: number;
  readonly mem?: string;
  /** more sbatch options for both submissions, e.g. ['--qos=long', '--constraint=ssd'] */
  readonly sbatchArgs?: readonly string[];
  /** who wrote it, for the header comment */
  readonly generator?: string;
}

export function slurmScript(o: SlurmExportOptions): string {
  checkJob(o.job);
  if (!Number.isInteger(o.tasks) || o.tasks < 1) throw new GhostprepError(`--tasks ${o.tasks}: need a whole number >= 1`);
  if (o.maxParallel !== undefined && (!Number.isInteger(o.maxParallel) || o.maxParallel < 1)) throw new GhostprepError(`--max-parallel ${o.maxParallel}: need a whole number >= 1`);
  if (o.cpusPerTask !== undefined && (!Number.isInteger(o.cpusPerTask) || o.cpusPerTask < 1)) throw new GhostprepError(`--cpus-per-task ${o.cpusPerTask}: need a whole number >= 1`);
  if (!o.outputDir.startsWith('/')) throw new GhostprepError(`--output-dir ${o.outputDir}: must be absolute (the jobs run elsewhere)`);
  if (!o.ghostprep.length) throw new GhostprepError('--ghostprep: empty command');

  const directives: string[] = [];
  const directive = (name: string, value: string | number | undefined) => {
    if (value !== undefined && value !== '') directives.push(`#SBATCH --${name}=${checkDirectiveValue(name, String(value))}`);
  };
  directive('job-name', o.jobName ?? 'ghostprep');
  directive('partition', o.partition);
  directive('account', o.account);
  directive('time', o.time);
  directive('nodes', 1);
  directive('ntasks', 1);
  directive('cpus-per-task', o.cpusPerTask ?? 1);
  directive('mem', o.mem);

  const jobs = o.job.jobs !== undefined ? String(o.job.jobs) : '${SLURM_CPUS_PER_TASK:-1}';
  const last = o.tasks - 1;
  const lines = [
    '#!/usr/bin/env bash',
    `# ghostprep on Slurm: ${o.tasks} shard(s) of \`ghostprep ${o.job.command}\` as a job array, then one job that`,
    '# merges their reports and audits every machine. Written by `' + (o.generator ?? 'ghostprep export slurm') + '`.',
    '#',
    '#   bash THIS_FILE               submit the array and the merge job (prints both job ids)',
    '#   bash THIS_FILE --wait        same, then wait for the merge job and exit with its exit code',
    `#   bash THIS_FILE 2,3           submit only shards 2 and 3 again (0..${last}), then the merge job`,
    '#',
    '# sbatch runs this same file for every array task (GHOSTPREP_STEP=shard) and for the merge',
    '# job (GHOSTPREP_STEP=merge). The #SBATCH lines below apply to both; edit them freely.',
    ...directives,
    'set -euo pipefail',
    '',
    `TASKS=${o.tasks}`,
    `MAX_PARALLEL=${o.maxParallel ?? ''}`,
    `OUTPUT_DIR=${shQuote(o.outputDir)}`,
    'REPORTS="$OUTPUT_DIR/reports"',
    'LOGS="$OUTPUT_DIR/logs"',
    `GHOSTPREP=${bashArray(o.ghostprep)}`,
    `SHARD_ARGS=${bashArray(shardArgs(o.job))}`,
    `INVENTORY=${shQuote(o.job.inventory)}`,
    `AUDIT_TARGET=${shQuote(auditTarget(o.job))}`,
    `SBATCH_ARGS=${bashArray(o.sbatchArgs ?? [])}`,
    '',
    '# libguestfs: TCG unless the site says otherwise (nested KVM hangs the appliance on many hosts)',
    'export LIBGUESTFS_BACKEND_SETTINGS="${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}"',
    'export LIBGUESTFS_BACKEND="${LIBGUESTFS_BACKEND:-direct}"',
    '',
    'shard_report() { printf \'%s/shard-%s-of-%s.json\' "$REPORTS" "$1" "$TASKS"; }',
    '',
    'submit() {',
    '  local wait=() array="" script array_job merge_job throttle=""',
    '  while (( $# > 0 )); do',
    '    case $1 in',
    '      --wait) wait=(--wait) ;;',
    '      -h|--help) sed -n \'2,10p\' "${BASH_SOURCE[0]}"; exit 0 ;;',
    '      *) [[ $1 =~ ^[0-9]+([-,][0-9]+)*$ ]] || { echo "error: $1: expected shard numbers like 2,5 or 0-3" >&2; exit 1; }',
    '         array=$1 ;;',
    '    esac',
    '    shift',
    '  done',
    '  script=$(readlink -f -- "${BASH_SOURCE[0]}")',
    '  mkdir -p -- "$REPORTS" "$LOGS"',
    '  if [[ -z $array ]]; then',
    '    array="0-$((TASKS - 1))"',
    '    rm -f -- "$REPORTS"/shard-*-of-"$TASKS".json "$REPORTS/merged.json" "$REPORTS/audit.txt"',
    '  fi',
    '  [[ -n $MAX_PARALLEL ]] && throttle="%$MAX_PARALLEL"',
    '  export GHOSTPREP_SCRIPT="$script"',
    '  array_job=$(sbatch --parsable "${SBATCH_ARGS[@]}" --array="$array$throttle" --output="$LOGS/%x-%A_%a.out" \\',
    '    --export=ALL,GHOSTPREP_STEP=shard "$script")',
    '  array_job=${array_job%%;*}',
    '  echo "ghostprep: shards $array: job array $array_job; logs in $LOGS"',
    '  if (( ${#wait[@]} )); then',
    '    echo "ghostprep: merge and audit after job $array_job, waiting for it; merged report: $REPORTS/merged.json"',
    '    exec sbatch "${wait[@]}" "${SBATCH_ARGS[@]}" --dependency="afterany:$array_job" --output="$LOGS/%x-merge-%j.out" \\',
    '      --export=ALL,GHOSTPREP_STEP=merge "$script"',
    '  fi',
    '  merge_job=$(sbatch --parsable "${SBATCH_ARGS[@]}" --dependency="afterany:$array_job" --output="$LOGS/%x-merge-%j.out" \\',
    '    --export=ALL,GHOSTPREP_STEP=merge "$script")',
    '  merge_job=${merge_job%%;*}',
    '  echo "ghostprep: merge and audit: job $merge_job (after $array_job); merged report: $REPORTS/merged.json"',
    '}',
    '',
    'run_shard() {',
    '  local index=$1 report rc=0',
    '  if ! [[ $index =~ ^[0-9]+$ ]] || (( index >= TASKS )); then',
    '    echo "error: array task $index is not a shard (0..$((TASKS - 1)))" >&2',
    '    exit 1',
    '  fi',
    '  report=$(shard_report "$index")',
    '  rm -f -- "$report"',
    '  echo "ghostprep: shard $index/$TASKS on $(hostname) (job ${SLURM_JOB_ID:-?})"',
    `  "\${GHOSTPREP[@]}" "\${SHARD_ARGS[@]}" --jobs "${jobs}" --shard "$index/$TASKS" --report "$report" || rc=$?`,
    '  # 3: some machines failed (the report names them; the merge job counts them)',
    '  exit "$rc"',
    '}',
    '',
    'merge() {',
    '  local reports=() missing=() i report rc=0 audit=0',
    '  for ((i = 0; i < TASKS; i++)); do',
    '    report=$(shard_report "$i")',
    '    if [[ -f $report ]]; then reports+=("$report"); else missing+=("$i"); fi',
    '  done',
    '  if (( ${#missing[@]} )); then',
    '    local list="${missing[*]}"',
    '    echo "error: no report from shard(s) ${list// /,} (see $LOGS); run them again: bash ${GHOSTPREP_SCRIPT:-THIS_FILE} ${list// /,}" >&2',
    '    exit 1',
    '  fi',
    '  "${GHOSTPREP[@]}" report merge "${reports[@]}" -i "$INVENTORY" -o "$REPORTS/merged.json" || rc=$?',
    '  if (( rc != 0 && rc != 3 )); then exit "$rc"; fi',
    `  "\${GHOSTPREP[@]}" audit --target "$AUDIT_TARGET" --jobs "${jobs}" > "$REPORTS/audit.txt" || audit=$?`,
    '  tail -n 3 "$REPORTS/audit.txt"',
    '  echo "ghostprep: merged report $REPORTS/merged.json (exit $rc), audit $REPORTS/audit.txt (exit $audit)"',
    '  if (( audit == 5 )); then exit 5; fi',
    '  if (( rc != 0 )); then exit "$rc"; fi',
    '  exit "$audit"',
    '}',
    '',
    'case ${GHOSTPREP_STEP:-} in',
    '  shard) run_shard "${SLURM_ARRAY_TASK_ID:?the shard step runs as a Slurm array task}" ;;',
    '  merge) merge ;;',
    '  "") if [[ -n ${SLURM_ARRAY_TASK_ID:-} ]]; then run_shard "$SLURM_ARRAY_TASK_ID"; else submit "$@"; fi ;;',
    '  *) echo "error: GHOSTPREP_STEP=$GHOSTPREP_STEP: expected shard or merge" >&2; exit 1 ;;',
    'esac',
    '',
  ];
  return lines.join('\n');
}

/** Where the merged report and the shard reports land. */
export function slurmPaths(outputDir: string, tasks: number): { merged: string; reports: string[]; audit: string; logs: string } {
  const reports = `${outputDir}/reports`;
  return {
    merged: `${reports}/merged.json`, audit: `${reports}/audit.txt`, logs: `${outputDir}/logs`,
    reports: Array.from({ length: tasks }, (_, i) => `${reports}/${shardReportName(i, tasks)}`),
  };
}
