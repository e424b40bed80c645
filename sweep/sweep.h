/* sweep.h — grids of compile / fine-tune / analysis runs (docs/sweeps.md).
 *
 * `plan` expands a sweep file into DIR (plan.json, jobs.txt, slurm.sh, the compiled start
 * models); each job is one `tracc sweep job DIR ID` line that runs its stages as child
 * `tracc` processes under DIR/runs/ID/ and writes result.json last; `run` is a local pool
 * over those lines and `status` counts what exists. Every function returns 0, or -1 (or an
 * exit status) with a message in err; nothing here exits the process. */
#ifndef TRACC_SWEEP_H
#define TRACC_SWEEP_H

#include "common/util.h"

typedef struct {
    const char *partition;  /* NULL: the cluster's default */
    const char *time;       /* default "04:00:00" */
    const char *mem;        /* default "2G" */
    int cpus;               /* default 1 */
    int max_parallel;       /* 0: no %N limit on the array */
} SwSlurm;

typedef struct {
    const char *sweep_path;  /* the sweep file */
    const char *dir;         /* the output directory */
    const char *tracc;       /* absolute path of the tracc binary the jobs run */
    long checkpoint_every;   /* finetune --checkpoint-every when the file gives none */
    SwSlurm slurm;
    const char *blas_core;   /* overrides the file's blas-core; "none" drops it; NULL: the file's */
    int quiet;
} SwPlanOpts;

/* Validate the sweep file and write DIR (created atomically: nothing exists on error).
 * Returns 0, 1 (bad sweep file or failure; message in err). */
int sw_plan(const SwPlanOpts *o, StrBuf *err);

/* Run job ID of DIR. wait: block on a job another process holds (else return SW_LOCKED).
 * threads: finetune --threads and OPENBLAS_NUM_THREADS (unless set) of its children.
 * Returns 0 done (or already done), 1 failed (failed.json written; said on stderr unless
 * quiet: `sweep run` lists failures itself), SW_LOCKED, or 1 with a message in err when
 * DIR or ID is unusable or the job was interrupted. */
#define SW_LOCKED 75
int sw_job(const char *dir, const char *id, int wait, int threads, int quiet, StrBuf *err);

typedef struct {
    int jobs;        /* parallel jobs */
    int threads;     /* per job */
    int quiet;
} SwRunOpts;

/* Run every job of DIR that is not done, o->jobs at a time. Returns 0 all done, 1 when a
 * job failed (listed on stderr) or on error (message in err). */
int sw_run(const char *dir, const SwRunOpts *o, const char *tracc, StrBuf *err);

/* Run analysis stage `stage` again on every done job of DIR with this binary (tracc, its
 * version), replacing after.STAGE in result.json and recording it under "redone"; jobs not
 * done or held by another process are skipped. Not the fine-tuning, not a shared stage.
 * `jobs` at a time (worker processes, each over every jobs-th job of the plan). `extra`
 * (nextra strings) are added to the planned command (checked first; recorded in "redone").
 * skip_redone: leave the jobs whose stage this version already redid with the same extra.
 * Returns 0, 2 (extra refused), or 1 (a job's stage failed: listed on stderr; or an error in err). */
int sw_redo(const char *dir, const char *stage, const char *tracc, const char *version, char *const *extra,
            int nextra, int skip_redone, int jobs, int quiet, StrBuf *err);

/* Why a stage's command option `key` (long name, no dashes) is the sweep's to set (a message),
 * or NULL: outputs, logs, checkpoints, machine-readable output. cmd is the tracc subcommand,
 * stage the stage's name (`prune` serves the prune and rollback stages). */
const char *sw_managed_key(const char *cmd, const char *stage, const char *key);

/* What separates the tokens of a stage option value ("pt1=a.rasp,spurious=b.rasp"): plan.c makes
 * the file tokens absolute, locate.c finds them again. */
#define SW_VALUE_SEPS ",=:"

/* The places a job was planned at (sweep/locate.c): absolute paths; sstart "" without a
 * Scr.+FT control; base is the sweep file's directory. */
typedef struct {
    const char *dir, *tracc, *base, *start, *sstart;
} SwPlaces;
/* A copy of a job's configuration (stages and start models' hashes) with those places, its
 * shared run's folder and the directory holding base and every file it names replaced by
 * names: what its "config_sha256" is a hash of, the same for the same sweep planned anywhere. */
struct json_t *sw_without_places(struct json_t *cfg, const SwPlaces *pl);

/* Whether `have` (a result's or stage record's config_sha256) is job's configuration: its
 * "config_sha256", or "config_sha256_paths", the hash with the places in it that tracc
 * computed before 2026-12-08 (results of sweeps planned then still count). */
int sw_cfg_is(struct json_t *job, const char *have);

/* A planned job's state from its files: result.json of the plan's configuration (done), a
 * held lock (running), failed.json (failed), none (pending). */
enum { SW_PENDING, SW_RUNNING, SW_DONE, SW_FAILED };
int sw_job_state(const char *dir, struct json_t *job);

/* Print done / running / failed / pending counts (JSON with json). 0 or 1 with err. */
int sw_status(const char *dir, int json, StrBuf *err);

/* Copy DIR without its models (every *.safetensors) and locks into OUT, a new directory
 * (written beside it and renamed: whole or absent): what `tracc report` and `sweep status`
 * read, to keep, share, or copy into the same sweep planned anywhere. Its path on
 * stdout, a summary on stderr unless quiet. 0, or 1 with a message in err. */
int sw_pack(const char *dir, const char *out, int quiet, StrBuf *err);

/* --- shared by the sweep modules (sweep/proc.c) --- */

/* Run argv (argv[0] a path) with stdout and stderr captured (either may be NULL to
 * discard); stdin is /dev/null. Returns the exit status, 128+signal, or -1 when it could
 * not start (message in err). */
int sw_capture(char *const argv[], const char *cwd, StrBuf *out, StrBuf *errout, StrBuf *err);
/* The same, with the child's CPU seconds (user + system) and wall seconds (either may be
 * NULL). */
int sw_capture_timed(char *const argv[], const char *cwd, StrBuf *out, StrBuf *errout, double *cpu_s, double *wall_s,
                     StrBuf *err);
/* Wait for child pid (retrying on EINTR): its status, and its CPU seconds into *cpu_s when
 * not NULL. 0, or -1 with errno. */
int sw_wait(pid_t pid, int *status, double *cpu_s);
/* CLOCK_MONOTONIC in seconds. */
double sw_now(void);

/* Run n commands, at most par at a time, stdout discarded; code[i] is each one's exit
 * status (as sw_capture) and errout[i] (initialized by the caller) its stderr. */
void sw_capture_many(char **const argvs[], size_t n, int par, int *code, StrBuf *errout);

/* fork + exec argv with stdout to out_fd and stderr to err_fd (-1: inherit), stdin from
 * /dev/null; the child gets `deathsig` when this process dies (0: none). pid or -1. */
int sw_spawn(char *const argv[], const char *cwd, int out_fd, int err_fd, int deathsig);

/* Decode a waitpid status: exit code, or 128+signal. */
int sw_exit_code(int status);

/* Shell-quote s for a jobs.txt line (single quotes when it holds anything unusual). */
void sw_shell_quote(StrBuf *b, const char *s);

/* The plan's "blas_core" (a sweep file's blas-core), set as OPENBLAS_CORETYPE for the child
 * processes this one starts: the kernel decides the rounding. The name, or NULL when unset. */
const char *sw_pin_blas(struct json_t *plan);
/* A stage's output ran on another kernel than pin (its "blas", "+"-joined over resumes, has a
 * part that is not pin; OpenBLAS falls back to its own choice for a name it does not know):
 * 1 with a message in msg; 0 when it agrees or records none. */
int sw_blas_mismatch(struct json_t *output, const char *pin, StrBuf *msg);

/* A stage's stdout as JSON: one value, or JSON lines (an array); NULL when neither. */
struct json_t *sw_parse_output(const char *text);

/* Read and parse a JSON file: NULL when it is missing or unreadable (message in err). */
struct json_t *sw_read_json(const char *path, StrBuf *err);

/* DIR/plan.json, checked to hold a "jobs" array: NULL with a message otherwise. */
struct json_t *sw_load_plan(const char *dir, StrBuf *err);

/* Write a JSON value atomically (indented with pretty, compact otherwise). */
int sw_write_json(const char *path, struct json_t *v, int pretty, StrBuf *err);

/* rm -rf (used on temporary and stale directories only); sw_clear_dir empties a directory
 * but for the entry named keep (NULL: none). */
void sw_rm_tree(const char *path);
void sw_clear_dir(const char *path, const char *keep);

/* Install handler for SIGINT and SIGTERM, keeping the old actions. */
struct sigaction;
void sw_catch_stop(void (*handler)(int), struct sigaction *old_int, struct sigaction *old_term);

/* mkdir -p. 0 or -1 (message in err). */
int sw_mkdirs(const char *path, StrBuf *err);

#endif
