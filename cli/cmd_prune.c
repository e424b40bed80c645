/* cmd_prune.c — `tracc prune MODEL --task FILE.rasp`: the paper's gradient-times-weight
 * pruning, or with --rollback ORIGINAL the reset of the fine-tuning changes that the task's
 * gradient points at (analysis/prune.h). */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/coords.h"
#include "analysis/diff.h"
#include "analysis/prune.h"
#include "analysis/readout.h"
#include "analysis/report.h"
#include "cli/cli.h"
#include "train/finetune.h"

#define MAX_KS 64
#define MAX_RESETS 32

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tracc prune [options] MODEL --task FILE.rasp\n"
            "\n"
            "Score every weight by gradient x weight, with one gradient of the task's cross-entropy\n"
            "(the first-order drop of the loss when the weight is set to 0), zero the top K, and\n"
            "report the accuracy on the task and on every --eval set for each K; every pruned\n"
            "weight is named in program coordinates (Jain et al. 2023, App. D).\n"
            "With --rollback ORIGINAL, rank the weights fine-tuning moved by the size of the change\n"
            "instead, reset the top K to their ORIGINAL values, and find the smallest K that brings\n"
            "the task back to --target accuracy: the wrapper, localized.\n"
            "\n"
            "options:\n"
            "  --task FILE.rasp   the program whose loss gives the gradient and the task accuracy\n"
            "  --at I[,J,K-L]     RASP indices where the loss counts (default: every position\n"
            "                     where the task has a value)\n"
            "  --len N|MIN-MAX    input lengths (default: the model's max_len)\n"
            "  --no-repeat        draw the gradient batch and every set without repeated tokens,\n"
            "                     as tracc finetune --no-repeat (the Max-identifier's inputs)\n"
            "  --top K1,K2,...    the numbers of weights to report (default: 1,2,4,8,16)\n"
            "  --each N           also zero each of the N top-ranked weights (units) on its own\n"
            "                     and report the accuracies: one weight that matters alone can\n"
            "                     rank below weights whose removal destroys the task\n"
            "  --reset SPEC       also set these weights to 0 (--rollback: to ORIGINAL's values)\n"
            "                     on their own and report the accuracies (repeatable, a row\n"
            "                     each): a tensor by name, an index prefix of it (the last\n"
            "                     index may be a range I:J), or several joined by '+', e.g.\n"
            "                     'blocks.0.attn.W_V[0]' (block 0 head 0's value weights),\n"
            "                     'blocks.0.mlp.W_out[2:94]' or 'blocks.1.mlp.W_in+blocks.1.mlp.b_in'\n"
            "  --neurons          prune whole units instead of weights: MLP hidden units and head\n"
            "                     QK / OV dimensions, scored by the sum over their weights\n"
            "  --eval NAME=FILE.rasp[,spurious=PRED.rasp,rate=C]\n"
            "                     another accuracy to report (repeatable), drawn as `tracc\n"
            "                     finetune --eval` draws it\n"
            "  --eval-size N      sequences per evaluation set (default: 1000)\n"
            "  --eval-seed S      (default: 12345, as tracc finetune)\n"
            "  --grad-samples N   samples in the gradient batch (default: 512)\n"
            "  --seed S           gradient batch seed (default: 1)\n"
            "  --logit-scale S    cross-entropy of softmax(S * logits) (default: the fine-tuning\n"
            "                     run's, from the model's provenance, else 10)\n"
            "  --rollback ORIGINAL  reset changes towards ORIGINAL instead of zeroing weights\n"
            "  --target ACC       rollback: the task accuracy to restore (default: 0.9)\n"
            "  --rank delta|grad  rollback: rank by |w - w_orig| (default) or by gradient x\n"
            "                     (w - w_orig)\n"
            "  --list N           ranked weights to list, in the text and the JSON (default:\n"
            "                     20; the JSON also lists those --each and --top need)\n"
            "  -o, --output FILE  write the model pruned at the largest --top K (rollback: at the\n"
            "                     K found), with provenance naming every changed weight\n"
            "  --write-k K        write at this K instead\n"
            "  --json             print the result as one JSON object\n"
            "  --check-only     check the options and exit 0 (no file is loaded or\n"
            "                   written; used by `tracc sweep plan`)\n"
            "  -h, --help         show this help\n"
            "\n"
            "Exit status: 0 done, 1 error, 2 usage.\n");
}

static int bad_usage(const char *msg, const char *arg) { return cli_usage_error("prune", msg, arg); }

/* One table row: the label, an accuracy per set, then `tail` (the item's name) if given. */
static void print_row(const PruneResult *r, const char *label, const PruneRow *row, const char *tail)
{
    printf("  %8s", label);
    for (int i = 0; i <= r->neval; i++) {
        char p[32];
        rep_pct(row->acc[i], p, sizeof p);
        printf("  %10s", p);
    }
    if (tail) printf("  %s", tail);
    printf("\n");
}

int cmd_prune(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"task", required_argument, NULL, 't'},        {"at", required_argument, NULL, 'a'},
        {"len", required_argument, NULL, 'l'},         {"top", required_argument, NULL, 'k'},
        {"neurons", no_argument, NULL, 'N'},           {"eval", required_argument, NULL, 'e'},
        {"no-repeat", no_argument, NULL, 'P'},          {"each", required_argument, NULL, 'E'},
        {"reset", required_argument, NULL, 'X'},
        {"eval-size", required_argument, NULL, 'z'},   {"eval-seed", required_argument, NULL, 'Z'},
        {"grad-samples", required_argument, NULL, 'g'}, {"seed", required_argument, NULL, 's'},
        {"logit-scale", required_argument, NULL, 'L'}, {"rollback", required_argument, NULL, 'R'},
        {"target", required_argument, NULL, 'T'},      {"rank", required_argument, NULL, 'r'},
        {"list", required_argument, NULL, 'n'},        {"output", required_argument, NULL, 'o'},
        {"write-k", required_argument, NULL, 'W'},     {"json", no_argument, NULL, 'j'}, {"check-only", no_argument, NULL, 1000},
        {"help", no_argument, NULL, 'h'},              {NULL, 0, NULL, 0}};
    PruneOptions o = PRUNE_OPTIONS_DEFAULT;
    const char *resets[MAX_RESETS];
    o.resets = resets;
    const char *at_s = NULL, *len_s = NULL, *orig_path = NULL, *out = NULL;
    long ks[MAX_KS + 1] = {1, 2, 4, 8, 16}, list = 20, write_k = -1, v;
    int nks = 5, json = 0, rank_given = 0, check_only = 0, c;
    json_t *evals = json_array();
    StrBuf err;
    sb_init(&err);
    opterr = 0;
    optind = 1;
    int rc = 2;
    while ((c = getopt_long(argc, argv, ":ho:", longopts, NULL)) != -1) {
        switch (c) {
        case 't': o.task = optarg; break;
        case 'a': at_s = optarg; break;
        case 'l': len_s = optarg; break;
        case 'k':
            if ((nks = ro_parse_ks(optarg, ks, MAX_KS, &err)) < 0) {
                rc = bad_usage("%s", err.s);
                goto out;
            }
            break;
        case 'N': o.neurons = 1; break;
        case 'P': o.no_repeat = 1; break;
        case 'E':
            if (cli_parse_long(optarg, 1, 100000000, &v)) {
                rc = bad_usage("--each expects a positive count, got '%s'", optarg);
                goto out;
            }
            o.each = v;
            break;
        case 'X':
            if (o.nresets == MAX_RESETS) {
                rc = bad_usage("at most %s --reset options", "32");
                goto out;
            }
            CoordSlices form;
            if (coord_parse_slices(NULL, optarg, &form, &err)) {
                rc = bad_usage("--reset expects TENSOR, TENSOR[I, J, ...] (the last may be I:J) or several "
                               "joined by '+': %s", err.s);
                goto out;
            }
            resets[o.nresets++] = optarg;
            break;
        case 'e': {
            if (json_array_size(evals) == PRUNE_MAX_EVAL) {
                rc = bad_usage("at most %s --eval sets", "32");
                goto out;
            }
            json_t *e = ft_parse_eval_spec(optarg, &err);
            if (!e) {
                rc = bad_usage("%s", err.s);
                goto out;
            }
            json_array_append_new(evals, e);
            break;
        }
        case 'z':
            if (cli_parse_long(optarg, 1, 10000000, &v)) {
                rc = bad_usage("--eval-size expects a positive count, got '%s'", optarg);
                goto out;
            }
            o.eval_n = v;
            break;
        case 'Z':
            if (cli_parse_u64(optarg, &o.eval_seed)) {
                rc = bad_usage("--eval-seed expects a non-negative integer, got '%s'", optarg);
                goto out;
            }
            break;
        case 'g':
            if (cli_parse_long(optarg, 1, 10000000, &v)) {
                rc = bad_usage("--grad-samples expects a positive count, got '%s'", optarg);
                goto out;
            }
            o.grad_n = v;
            break;
        case 's':
            if (cli_parse_u64(optarg, &o.seed)) {
                rc = bad_usage("--seed expects a non-negative integer, got '%s'", optarg);
                goto out;
            }
            break;
        case 'L':
            if (rep_parse_double(optarg, 1e-9, 1e9, &o.logit_scale)) {
                rc = bad_usage("--logit-scale expects a positive number, got '%s'", optarg);
                goto out;
            }
            break;
        case 'R': orig_path = optarg; break;
        case 'T':
            if (rep_parse_double(optarg, 0, 1, &o.target)) {
                rc = bad_usage("--target expects an accuracy from 0 to 1, got '%s'", optarg);
                goto out;
            }
            break;
        case 'r':
            rank_given = 1;
            if (!strcmp(optarg, "grad"))
                o.rank_delta = 0;
            else if (!strcmp(optarg, "delta"))
                o.rank_delta = 1;
            else {
                rc = bad_usage("--rank expects grad or delta, got '%s'", optarg);
                goto out;
            }
            break;
        case 'n':
            if (cli_parse_long(optarg, 0, 1000000, &list)) {
                rc = bad_usage("--list expects a count, got '%s'", optarg);
                goto out;
            }
            break;
        case 'o': out = optarg; break;
        case 'W':
            if (cli_parse_long(optarg, 0, 1L << 40, &write_k)) {
                rc = bad_usage("--write-k expects a count, got '%s'", optarg);
                goto out;
            }
            break;
        case 'j': json = 1; break;
        case 1000: check_only = 1; break;
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        default: rc = cli_bad_option("prune", c, argv); goto out;
        }
    }
    if (argc - optind != 1) {
        rc = bad_usage("expected one model file%s", "");
        goto out;
    }
    if (!o.task) {
        rc = bad_usage("--task FILE.rasp is required%s", "");
        goto out;
    }
    if (rank_given && !orig_path) {
        rc = bad_usage("--rank needs --rollback%s", "");
        goto out;
    }
    if (write_k >= 0 && !out) {
        rc = bad_usage("--write-k needs -o%s", "");
        goto out;
    }
    if (write_k > 0) {
        /* report the K that will be written as well */
        int have = 0;
        for (int i = 0; i < nks; i++) have |= ks[i] == write_k;
        if (!have && nks < MAX_KS) {
            int i = nks++;
            while (i > 0 && ks[i - 1] > write_k) {
                ks[i] = ks[i - 1];
                i--;
            }
            ks[i] = write_k;
        }
    }
    for (size_t i = 0; i < json_array_size(evals); i++) {
        json_t *e = json_array_get(evals, i);
        PruneEval *pe = &o.evals[o.neval++];
        pe->name = json_string_value(json_object_get(e, "name"));
        pe->program = json_string_value(json_object_get(e, "program"));
        pe->spurious = json_string_value(json_object_get(e, "spurious"));
        pe->rate = json_is_number(json_object_get(e, "rate")) ? json_number_value(json_object_get(e, "rate")) : 0;
        if (pe->spurious && !json_is_number(json_object_get(e, "rate"))) {
            rc = bad_usage("--eval %s: spurious= needs rate=C", pe->name);
            goto out;
        }
    }
    o.ks = ks;
    o.nks = nks;
    if ((rc = cli_check_len_at("prune", len_s, at_s))) goto out;
    if (check_only) {
        rc = 0;
        goto out;
    }

    rc = 1;
    if (out && cli_check_output("prune", "-o", out)) goto out;   /* before any work */
    const char *path = argv[optind];
    Model *m = NULL, *orig = NULL;
    if (cli_check_input("prune", NULL, path, CLI_WANT_MODEL) ||
        (orig_path && cli_check_input("prune", "--rollback", orig_path, CLI_WANT_MODEL)) ||
        cli_check_input("prune", "--task", o.task, CLI_WANT_PROGRAM))
        goto out;
    for (int i = 0; i < o.neval; i++)
        if (cli_check_input("prune", "--eval", o.evals[i].program, CLI_WANT_PROGRAM) ||
            (o.evals[i].spurious && cli_check_input("prune", "--eval", o.evals[i].spurious, CLI_WANT_PROGRAM)))
            goto out;
    int *at = NULL;
    PruneResult r;
    memset(&r, 0, sizeof r);
    int ran = 0;
    char sha[65] = "", osha[65] = "";
    if (!(m = model_load_hashed(path, sha, &err)) || (orig_path && !(orig = model_load_hashed(orig_path, osha, &err)))) {
        fprintf(stderr, "tracc prune: %s\n", err.s);
        goto done;
    }
    int maxlen = m->cfg.n_ctx - 1;
    at = xmalloc(sizeof(int) * (size_t)(maxlen + 1));
    if ((len_s && ro_parse_len(len_s, maxlen, &o.len_min, &o.len_max, &err)) ||
        (at_s && (o.nat = ro_parse_at(at_s, maxlen, at, &err)) < 0)) {
        fprintf(stderr, "tracc prune: %s\n", err.s);
        goto done;
    }
    if (!len_s) o.len_min = o.len_max = maxlen;
    o.at = at;
    if (orig) {
        /* the same compiled structure, and an informative note when it is not the parent */
        StrBuf why;
        sb_init(&why);
        if (diff_compatible(orig, m, &why)) {
            fprintf(stderr, "tracc prune: --rollback %s and %s do not share their compiled structure:\n", orig_path, path);
            for (char *line = strtok(why.s, "\n"); line; line = strtok(NULL, "\n")) fprintf(stderr, "  %s\n", line);
            sb_free(&why);
            goto done;
        }
        sb_free(&why);
        const char *parent = json_is_object(m->provenance)
                                 ? json_string_value(json_object_get(m->provenance, "parent_sha256"))
                                 : NULL;
        if (!parent || strcmp(parent, osha))
            fprintf(stderr, "tracc prune: warning: %s's provenance does not name %s as its parent\n", path, orig_path);
        o.original = orig;
    }
    if (prune_run(m, &o, &r, &err)) {
        fprintf(stderr, "tracc prune: %s\n", err.s);
        goto done;
    }
    ran = 1;
    long wk = write_k >= 0 ? write_k : orig ? r.found_k : (r.nrows ? r.rows[r.nrows - 1].k : 0);
    if (out && wk < 0) {
        fprintf(stderr, "tracc prune: no K restored the task to %.1f%%: nothing written (use --write-k K)\n",
                100 * o.target);
        goto done;
    }
    if (out && wk > r.nitems) wk = r.nitems;

    if (json) {
        json_t *j = prune_json(&o, &r, list);
        json_object_set_new(j, "model", json_string(path));
        json_object_set_new(j, "rollback", orig_path ? json_string(orig_path) : json_null());
        if (out) json_object_set_new(j, "written", json_pack("{s:s, s:I}", "path", out, "k", (json_int_t)wk));
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
        printf("%s\n", s);
        free(s);
        json_decref(j);
    } else {
        if (orig)
            printf("rollback %s towards %s: %s\n", path, orig_path,
                   o.rank_delta ? "the largest changes |w - w_original| first"
                                : "score = gradient x (w - w_original)");
        else
            printf("prune %s: score = gradient x weight\n", path);
        printf("  %s the cross-entropy of %s", orig && o.rank_delta ? "task:" : "one gradient of", o.task);
        if (o.nat) {
            printf(" at index");
            for (int i = 0; i < o.nat; i++) printf("%s%d", i ? "," : " ", o.at[i]);
        }
        printf(" (%ld samples, loss %.4g, logit scale %g)\n", o.grad_n, r.loss, r.logit_scale);
        printf("  %ld candidate %s (%s); accuracies on %ld sequences each\n\n", r.candidates,
               o.neurons ? "units" : "weights", orig ? "moved by fine-tuning" : "nonzero", o.eval_n);
        printf("  %8s", "K");
        for (int i = 0; i <= r.neval; i++) printf("  %10s", r.eval_names[i]);
        printf("\n");
        if (orig) print_row(&r, "ORIGINAL", &r.original, NULL);
        print_row(&r, "0", &r.base, NULL);
        for (int i = 0; i < r.nrows; i++) {
            char k[32];
            snprintf(k, sizeof k, "%ld", r.rows[i].k);
            print_row(&r, k, &r.rows[i], NULL);
        }
        if (orig) {
            if (r.found_k >= 0)
                printf("\n  the smallest K found that restores the task to >= %.1f%%: K = %ld (task %.1f%%)\n",
                       100 * o.target, r.found_k, 100 * r.found_acc);
            else
                printf("\n  no K restores the task to %.1f%% (all %ld changes tried)\n", 100 * o.target, r.candidates);
            if (r.nsearch) {
                /* the task accuracy along the search, where it changed */
                printf("  search (task accuracy where it changed):");
                double prev = r.base.acc[0];
                int col = 0;
                for (int i = 0; i < r.nsearch; i++) {
                    double a = r.search[i].acc[0];
                    if (a == prev && i + 1 < r.nsearch) continue;
                    prev = a;
                    char p[32];
                    rep_pct(a, p, sizeof p);
                    if (col++ % 6 == 0) printf("\n   ");
                    printf(" K=%ld %s", r.search[i].k, p);
                }
                printf("\n");
            }
        }
        if (r.nresets) {
            printf("\n  each --reset alone (%s)\n", orig ? "reset to ORIGINAL's values" : "set to 0");
            printf("  %8s", "params");
            for (int i = 0; i <= r.neval; i++) printf("  %10s", r.eval_names[i]);
            printf("  reset\n");
            for (int i = 0; i < r.nresets; i++) {
                char k[32];
                snprintf(k, sizeof k, "%ld", r.reset_params[i]);
                print_row(&r, k, &r.resets[i], o.resets[i]);
            }
        }
        if (r.neach) {
            printf("\n  each of the top %d %s alone (%s)\n", r.neach, o.neurons ? "units" : "weights",
                   orig ? "reset to ORIGINAL's value" : "set to 0");
            printf("  %8s", "rank");
            for (int i = 0; i <= r.neval; i++) printf("  %10s", r.eval_names[i]);
            printf("  %s\n", o.neurons ? "unit" : "weight");
            for (int i = 0; i < r.neach; i++) {
                char k[32];
                snprintf(k, sizeof k, "%d", i + 1);
                print_row(&r, k, &r.each[i], r.items[i].id);
            }
        }
        long nl = list < r.nitems ? list : r.nitems;
        if (out && wk > nl && wk <= r.nitems && wk <= 200) nl = wk;
        printf("\n  ranked %s (%s)\n", o.neurons ? "units" : "weights",
               orig ? "reset to ORIGINAL's values" : "set to 0");
        for (long i = 0; i < nl; i++) {
            const PruneItem *it = &r.items[i];
            const char *sl = orig && o.rank_delta ? "|d|" : "score";
            if (o.neurons)
                printf("  %4ld  %s %-+10.4g %s\n", i + 1, sl, it->score, it->id);
            else
                printf("  %4ld  %s %-+10.4g %-28s %.5g -> %.5g   %s\n", i + 1, sl, it->score, it->id, it->from + 0.0, it->to + 0.0,
                       it->meaning);
        }
    }
    if (out) {
        /* the analysed model itself becomes the output (prune_run left it unchanged): its
         * provenance names it as it was, then the edit */
        json_t *prov = prune_provenance(&o, &r, wk, sha, m, orig ? osha : NULL, TRACC_VERSION);
        ft_strip_training_state(m);
        prune_apply(m, &o, &r, wk);
        model_set_provenance(m, prov);
        json_decref(prov);
        if (model_save(m, out, &err)) {
            fprintf(stderr, "tracc prune: %s\n", err.s);
            goto done;
        }
        fflush(stdout);
        fprintf(stderr, "tracc prune: wrote %s (K = %ld)\n", out, wk);
    }
    rc = 0;
done:
    if (ran) prune_result_free(&r);
    free(at);
    model_free(m);
    model_free(orig);
out:
    json_decref(evals);
    sb_free(&err);
    return rc;
}
