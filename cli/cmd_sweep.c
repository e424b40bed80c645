/* cmd_sweep.c — `tracc sweep plan|run|status|job` (sweep/sweep.h, docs/sweeps.md). */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "sweep/sweep.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tracc sweep plan SWEEP.json -o DIR [options]\n"
            "       tracc sweep run DIR [-j N] [--threads T]\n"
            "       tracc sweep status DIR [--json]\n"
            "       tracc sweep job DIR ID [--no-wait] [--threads T]\n"
            "       tracc sweep redo DIR STAGE [-j N] [--skip-redone] [--quiet] [-- OPTION...]\n"
            "       tracc sweep pack DIR -o OUT [--quiet]\n"
            "\n"
            "A grid of compile / fine-tune / analysis runs (docs/sweeps.md). `plan` checks the\n"
            "sweep file (keys are the subcommands' long flag names), compiles the start models\n"
            "and writes DIR: plan.json, jobs.txt (one complete `tracc sweep job` command per\n"
            "line: run it with `sweep run`, GNU parallel, Slurm or anything else), slurm.sh.\n"
            "Every job is idempotent and restartable; results: DIR/runs/ID/result.json.\n"
            "`redo` runs one analysis stage (decompile, prune, ...) again on every finished job\n"
            "with this tracc, replacing its part of result.json (\"redone\" says which tracc):\n"
            "for a newer tracc's analyses without fine-tuning again. Options after `--` are\n"
            "added to the stage's planned command (e.g. `-- --reset blocks.0.attn.W_V` to\n"
            "prune), checked first, and recorded with the result (\"redone\": \"extra\").\n"
            "`pack` copies DIR without its models and locks into OUT (a new directory): the\n"
            "results, logs and plan that `tracc report` and `sweep status` read, megabytes\n"
            "where the sweep is gigabytes, to keep or share; copied into the same sweep file\n"
            "planned anywhere, its done jobs are not run again.\n"
            "\n"
            "plan options:\n"
            "  -o, --output DIR        the sweep directory (must not exist, or be empty)\n"
            "  --checkpoint-every N    fine-tuning checkpoints, unless the file sets\n"
            "                          checkpoint-every (default: 500)\n"
            "  --slurm-partition P     (default: the cluster's default partition)\n"
            "  --slurm-time T          per job (default: 04:00:00)\n"
            "  --slurm-mem M           per job (default: 2G)\n"
            "  --slurm-cpus N          per job (default: 1)\n"
            "  --slurm-max-parallel N  array jobs running at once (default: no limit)\n"
            "  --blas-core NAME|none   the OpenBLAS kernels every job runs on, over the sweep\n"
            "                          file's blas-core (none: this machine's own); checked here\n"
            "  --quiet                 no progress on stderr\n"
            "pack options:\n"
            "  -o, --output OUT        the pack (a directory that must not exist)\n"
            "  --quiet                 no summary on stderr\n"
            "run and redo options:\n"
            "  -j, --jobs N            jobs at a time (default: the number of CPUs)\n"
            "  --threads T             (run) threads per job, and OPENBLAS_NUM_THREADS unless\n"
            "                          set (default: 1; redo: OPENBLAS_NUM_THREADS=1 unless set)\n"
            "  --quiet                 no progress line\n"
            "redo options:\n"
            "  --skip-redone           leave the jobs whose stage this version already redid\n"
            "                          with the same options after -- (for jobs finished since)\n"
            "status options:\n"
            "  --json                  the counts as one JSON object\n"
            "job options (the jobs.txt lines):\n"
            "  --no-wait               exit 75 at once when another process runs the job\n"
            "                          (default: wait for it, then do what is left)\n"
            "  --threads T             as for run (default: 1)\n"
            "  -h, --help              show this help\n"
            "\n"
            "Exit status: 0 ok (run: every job done), 1 error or a job failed, 2 usage.\n");
}

static int bad(const char *fmt, const char *arg) { return cli_usage_error("sweep", fmt, arg); }

/* Slurm values go into slurm.sh as they are: only their plain forms are accepted.
 * kind 't': [D-]HH[:MM[:SS]] or minutes; 'm': a number with an optional K/M/G/T; 'p': a name. */
static int slurm_value_ok(const char *s, char kind)
{
    if (!*s) return 0;
    if (kind == 'p') {
        for (const char *p = s; *p; p++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-,", *p)) return 0;
        return 1;
    }
    if (kind == 'm') {
        size_t n = strspn(s, "0123456789");
        return n > 0 && (!s[n] || (strchr("KMGT", s[n]) && !s[n + 1]));
    }
    size_t n = strspn(s, "0123456789");
    if (!n) return 0;
    s += n;
    if (*s == '-') {
        s++;
        if (!(n = strspn(s, "0123456789"))) return 0;
        s += n;
    }
    for (int parts = 0; *s; parts++) {
        if (*s != ':' || parts == 2) return 0;
        s++;
        if (!(n = strspn(s, "0123456789"))) return 0;
        s += n;
    }
    return 1;
}

/* The absolute path of this binary: what jobs.txt runs on any machine that sees it. */
static int self_path(char *buf, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n <= 0) return -1;
    buf[n] = 0;
    return 0;
}

int cmd_sweep(int argc, char **argv)
{
    if (argc < 2) return bad("expected plan, run, status, job, redo or pack%s", "");
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
        usage(stdout);
        return 0;
    }
    enum { O_CKPT = 256, O_PART, O_TIME, O_MEM, O_CPUS, O_MAXP, O_QUIET, O_THREADS, O_JSON, O_NOWAIT, O_WAIT, O_SKIP, O_BLAS };
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},      {"checkpoint-every", required_argument, NULL, O_CKPT},
        {"slurm-partition", required_argument, NULL, O_PART}, {"slurm-time", required_argument, NULL, O_TIME},
        {"slurm-mem", required_argument, NULL, O_MEM}, {"slurm-cpus", required_argument, NULL, O_CPUS},
        {"slurm-max-parallel", required_argument, NULL, O_MAXP}, {"quiet", no_argument, NULL, O_QUIET},
        {"jobs", required_argument, NULL, 'j'},        {"threads", required_argument, NULL, O_THREADS},
        {"json", no_argument, NULL, O_JSON},           {"no-wait", no_argument, NULL, O_NOWAIT},
        {"wait", no_argument, NULL, O_WAIT},           {"help", no_argument, NULL, 'h'},
        {"skip-redone", no_argument, NULL, O_SKIP},    {"blas-core", required_argument, NULL, O_BLAS},
        {NULL, 0, NULL, 0},
    };
    SwPlanOpts po = {0};
    po.checkpoint_every = 500;
    po.slurm.time = "04:00:00";
    po.slurm.mem = "2G";
    po.slurm.cpus = 1;
    long nprocs = sysconf(_SC_NPROCESSORS_ONLN);
    SwRunOpts ro = {nprocs < 1 ? 1 : (int)nprocs, 1, 0};
    int json = 0, wait = 1, skip_redone = 0, c;
    long v;
    int is_plan = !strcmp(sub, "plan"), is_run = !strcmp(sub, "run"), is_status = !strcmp(sub, "status"),
        is_job = !strcmp(sub, "job"), is_redo = !strcmp(sub, "redo"), is_pack = !strcmp(sub, "pack");
    if (!is_plan && !is_run && !is_status && !is_job && !is_redo && !is_pack)
        return bad("unknown subcommand '%s' (plan, run, status, job, redo, pack)", sub);
    /* redo: what follows `--` is added to the stage's planned command */
    char **extra = NULL;
    int nextra = 0;
    if (is_redo)
        for (int i = 2; i < argc; i++)
            if (!strcmp(argv[i], "--")) {
                extra = argv + i + 1, nextra = argc - i - 1;
                argc = i;
                break;
            }
    optind = 1;
    opterr = 0;
    argc--, argv++;
    int li = -1;
    while ((c = getopt_long(argc, argv, ":o:j:h", longopts, &li)) != -1) {
        char oname[64];
        if (li >= 0) snprintf(oname, sizeof oname, "--%s", longopts[li].name);
        else snprintf(oname, sizeof oname, "-%c", c);
        li = -1;
        int for_plan = c == 'o' || c == O_BLAS || c == O_CKPT || c == O_PART || c == O_TIME || c == O_MEM || c == O_CPUS || c == O_MAXP;
        int for_run = c == 'j' && !is_redo, for_job = c == O_NOWAIT || c == O_WAIT, for_status = c == O_JSON;
        int for_threads = c == O_THREADS;
        if (c == 'o' && is_pack) for_plan = 0;
        if ((for_plan && !is_plan) || (for_run && !is_run) || (for_job && !is_job) || (for_status && !is_status) ||
            (for_threads && !(is_run || is_job)) || (c == O_QUIET && is_status) || (c == O_SKIP && !is_redo))
            return bad("option '%s' does not apply to this subcommand", oname);
        switch (c) {
        case 'o': po.dir = optarg; break;
        case O_CKPT:
            if (cli_parse_long(optarg, 1, 100000000, &v)) return bad("--checkpoint-every must be a positive integer, got '%s'", optarg);
            po.checkpoint_every = v;
            break;
        case O_PART:
            if (!slurm_value_ok(optarg, 'p')) return bad("--slurm-partition must be a partition name, got '%s'", optarg);
            po.slurm.partition = optarg;
            break;
        case O_TIME:
            if (!slurm_value_ok(optarg, 't')) return bad("--slurm-time must be MINUTES, HH:MM:SS or D-HH:MM:SS, got '%s'", optarg);
            po.slurm.time = optarg;
            break;
        case O_MEM:
            if (!slurm_value_ok(optarg, 'm')) return bad("--slurm-mem must be a size like 2G or 500M, got '%s'", optarg);
            po.slurm.mem = optarg;
            break;
        case O_CPUS:
            if (cli_parse_long(optarg, 1, 1024, &v)) return bad("--slurm-cpus must be 1..1024, got '%s'", optarg);
            po.slurm.cpus = (int)v;
            break;
        case O_MAXP:
            if (cli_parse_long(optarg, 1, 1000000, &v)) return bad("--slurm-max-parallel must be a positive integer, got '%s'", optarg);
            po.slurm.max_parallel = (int)v;
            break;
        case O_QUIET: po.quiet = ro.quiet = 1; break;
        case 'j':
            if (cli_parse_long(optarg, 1, 1024, &v)) return bad("--jobs must be 1..1024, got '%s'", optarg);
            ro.jobs = (int)v;
            break;
        case O_THREADS:
            if (cli_parse_long(optarg, 1, 64, &v)) return bad("--threads must be 1..64, got '%s'", optarg);
            ro.threads = (int)v;
            break;
        case O_JSON: json = 1; break;
        case O_NOWAIT: wait = 0; break;
        case O_WAIT: wait = 1; break;
        case O_SKIP: skip_redone = 1; break;
        case O_BLAS:
            if (!*optarg || strlen(optarg) > 32 ||
                strspn(optarg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") != strlen(optarg))
                return bad("--blas-core must be an OpenBLAS core name (e.g. Haswell) or none, got '%s'", optarg);
            po.blas_core = optarg;
            break;
        case 'h': usage(stdout); return 0;
        case ':': return bad("option '%s' needs a value", argv[optind - 1]);
        default: return bad("unknown option '%s'", argv[optind - 1]);
        }
    }
    char self[PATH_MAX];
    if (self_path(self, sizeof self)) {
        fprintf(stderr, "tracc sweep: cannot find the path of this binary (/proc/self/exe)\n");
        return 1;
    }
    int rc, npos = argc - optind;
    if (is_plan && npos != 1) return bad("plan: expected one sweep file%s", "");
    if (is_plan && !po.dir) return bad("plan: -o DIR is required%s", "");
    if ((is_run || is_status) && npos != 1) return bad("%s: expected one sweep directory", sub);
    if (is_job && npos != 2) return bad("job: expected DIR and a job id%s", "");
    if (is_redo && npos != 2) return bad("redo: expected DIR and a stage name (e.g. decompile)%s", "");
    if (is_pack && npos != 1) return bad("pack: expected one sweep directory%s", "");
    if (is_pack && !po.dir) return bad("pack: -o OUT is required%s", "");
    StrBuf err;
    sb_init(&err);
    if (is_plan) {
        po.sweep_path = argv[optind];
        po.tracc = self;
        rc = sw_plan(&po, &err);
    } else if (is_run) {
        rc = sw_run(argv[optind], &ro, self, &err);
    } else if (is_status) {
        rc = sw_status(argv[optind], json, &err);
    } else if (is_pack) {
        rc = sw_pack(argv[optind], po.dir, ro.quiet, &err);
    } else if (is_redo) {
        rc = sw_redo(argv[optind], argv[optind + 1], self, TRACC_VERSION, extra, nextra, skip_redone, ro.jobs,
                     ro.quiet, &err);
    } else {
        rc = sw_job(argv[optind], argv[optind + 1], wait, ro.threads, ro.quiet, &err);
        if (rc == SW_LOCKED && !ro.quiet)
            fprintf(stderr, "tracc sweep job: %s is being run by another process\n", argv[optind + 1]);
    }
    if (err.len) fprintf(stderr, "tracc sweep %s: %s\n", sub, err.s);
    sb_free(&err);
    return rc;
}
