/* finetune.c — see finetune.h. */
#include "train/finetune.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/outfile.h"
#include "common/rng.h"
#include "common/sha256.h"
#include "compiler/back/verify.h"
#include "runtime/decode.h"
#include "runtime/forward.h"
#include "train/backward.h"
#include "train/fpmode.h"

/* ---------------------------------------------------------------- configuration */

json_t *ft_config_defaults(void)
{
    json_t *o = json_object();
    const char *nulls[] = {"model", "output", "checkpoint", "log", "task", "data", "spurious", "spurious_rate",
                           "len", "save_init"};
    for (size_t i = 0; i < ARRAY_LEN(nulls); i++) json_object_set_new(o, nulls[i], json_null());
    json_object_set_new(o, "mix", json_array());
    json_object_set_new(o, "no_repeat", json_false());
    json_object_set_new(o, "at", json_array());
    json_object_set_new(o, "max_tries", json_integer(DATA_DEFAULT_MAX_TRIES));
    json_object_set_new(o, "spurious_others", json_string("exclude"));
    json_object_set_new(o, "logit_scale", json_real(10.0));
    json_object_set_new(o, "optimizer", json_string("sgd"));
    json_object_set_new(o, "lr", json_real(1e-3));
    json_object_set_new(o, "momentum", json_real(0.9));
    json_object_set_new(o, "beta1", json_real(0.9));
    json_object_set_new(o, "beta2", json_real(0.999));
    json_object_set_new(o, "eps", json_real(1e-8));
    json_object_set_new(o, "weight_decay", json_real(0.0));
    json_object_set_new(o, "clip", json_real(1.0));
    json_object_set_new(o, "warmup", json_integer(0));
    json_object_set_new(o, "schedule", json_string("cosine"));
    json_object_set_new(o, "min_lr_ratio", json_real(0.01));
    json_object_set_new(o, "steps", json_integer(1000));
    json_object_set_new(o, "batch", json_integer(96));
    json_object_set_new(o, "init_noise", json_real(0.0));
    json_object_set_new(o, "flush_subnormals", json_false());
    json_object_set_new(o, "train", json_array());
    json_object_set_new(o, "freeze", json_array());
    json_object_set_new(o, "seed", json_integer(1));
    json_object_set_new(o, "eval", json_array());
    json_object_set_new(o, "eval_every", json_integer(100));
    json_object_set_new(o, "eval_size", json_integer(1000));
    json_object_set_new(o, "eval_seed", json_integer(12345));
    json_object_set_new(o, "log_every", json_integer(10));
    json_object_set_new(o, "checkpoint_every", json_integer(0));
    json_object_set_new(o, "stop_when", json_null());
    json_object_set_new(o, "preset", json_null());
    return o;
}

/* ---------------------------------------------------------------- presets */

/* jain2023's warmup: the paper's 2000 of 10000 steps, kept at that share when --steps changes */
#define JAIN2023_WARMUP_PERCENT 20
#define JAIN2023_WARMUP_NOTE "20% of --steps"

/* A preset is a set of configuration values under the flags: a flag given always wins. The
 * learning rate is deliberately not in jain2023: the paper sweeps it. */
json_t *ft_preset_values(const char *name, const json_t *given)
{
    if (strcmp(name, "jain2023")) return NULL;
    json_t *v = json_pack("{s:s, s:f, s:i, s:i, s:s, s:f, s:f, s:[i], s:s}", "optimizer", "sgd", "momentum", 0.9,
                          "batch", 96, "steps", 10000, "schedule", "cosine", "min_lr_ratio", 0.01, "init_noise",
                          1e-3, "at", 1, "preset", "jain2023");
    /* the warmup follows the run's length (the paper: 2000 of 10000) */
    json_t *sj = given ? json_object_get(given, "steps") : NULL;
    long long steps = json_is_integer(sj) ? json_integer_value(sj) : 10000;
    if (steps < 0) steps = 0;
    json_object_set_new(v, "warmup", json_integer((steps * JAIN2023_WARMUP_PERCENT + 50) / 100));
    if (given) {
        const char *key;
        json_t *x, *tmp;
        json_object_foreach_safe(v, tmp, key, x) {
            if (json_object_get(given, key)) json_object_del(v, key);
        }
    }
    return v;
}

const char *ft_preset_names(void)
{
    return "jain2023";
}

json_t *ft_config_compose(const json_t *given, const char *preset, json_t **sources)
{
    json_t *pv = preset ? ft_preset_values(preset, given) : json_object();
    if (!pv) return NULL;
    json_t *c = ft_config_defaults();
    json_t *src = json_object();
    const char *key;
    json_t *v;
    json_object_foreach(c, key, v) json_object_set_new(src, key, json_string("default"));
    char who[96];
    snprintf(who, sizeof who, "preset %s", preset ? preset : "");
    json_object_foreach(pv, key, v) {
        json_object_set(c, key, v);
        if (!strcmp(key, "warmup")) {
            char note[160];
            snprintf(note, sizeof note, "%s: %s", who, JAIN2023_WARMUP_NOTE);
            json_object_set_new(src, key, json_string(note));
        } else {
            json_object_set_new(src, key, json_string(who));
        }
    }
    json_object_foreach((json_t *)given, key, v) {
        json_object_set(c, key, v);
        json_object_set_new(src, key, json_string("flag"));
    }
    json_decref(pv);
    if (sources) *sources = src;
    else json_decref(src);
    return c;
}

/* The protocol a preset run takes (after the flags) and the choices the paper left open. */
void ft_preset_notice(const FtConfig *cfg, StrBuf *out)
{
    const OptimConfig *o = &cfg->opt;
    sb_printf(out, "preset %s: ", cfg->preset ? cfg->preset : "(none)");
    if (o->kind == OPTIM_SGD) sb_printf(out, "SGD momentum %g", o->momentum);
    else sb_printf(out, "AdamW betas %g, %g", o->beta1, o->beta2);
    sb_printf(out, ", batch %d, %ld steps, warmup %ld then ", cfg->batch, o->steps, o->warmup);
    if (o->schedule == SCHED_COSINE) sb_printf(out, "cosine to %g x lr", o->min_lr_ratio);
    else sb_printf(out, "constant lr");
    sb_printf(out, ", init noise %g, loss at ", cfg->init_noise);
    if (!cfg->data.nat) sb_printf(out, "every valued position");
    else {
        sb_printf(out, "RASP index%s ", cfg->data.nat > 1 ? "es" : "");
        for (int i = 0; i < cfg->data.nat; i++) sb_printf(out, "%s%d", i ? "," : "", cfg->data.at[i]);
    }
    sb_printf(out, "; lr %g (not set by the preset: the paper sweeps it).\n", o->lr);
    sb_printf(out, "Choices the paper left open: logit scale %g (fixed), gradient clipping ", cfg->logit_scale);
    if (o->clip > 0) sb_printf(out, "%g", o->clip);
    else sb_printf(out, "off");
    if (o->kind == OPTIM_SGD) sb_printf(out, ", momentum %g", o->momentum);
    sb_printf(out, ", trained tensors: ");
    if (cfg->ntrain)
        for (int i = 0; i < cfg->ntrain; i++) sb_printf(out, "%s%s", i ? "," : "", cfg->train[i]);
    else
        sb_printf(out, "all but unembed.*");
    if (cfg->nfreeze) {
        sb_printf(out, " except ");
        for (int i = 0; i < cfg->nfreeze; i++) sb_printf(out, "%s%s", i ? "," : "", cfg->freeze[i]);
    }
    sb_printf(out, ".\n");
}

/* A number as a flag value: the shortest %g that reads back the same ("10", "0.001", "1e-08"). */
static void flag_num(double x, char *buf, size_t cap)
{
    if (x == floor(x) && fabs(x) < 1e15) {
        snprintf(buf, cap, "%.0f", x);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return;
    }
}

/* One setting as it would be given on the command line ("--lr 0.01", "--no-repeat",
 * "--at 0,2", "--eval pt=count_a.rasp"); nothing for a value that is unset, off or empty. */
static void setting_text(const char *key, json_t *v, StrBuf *out)
{
    char flag[64], num[64];
    ft_config_flag(key, flag, sizeof flag);
    if (!strcmp(key, "output")) snprintf(flag, sizeof flag, "-o");
    if (json_is_null(v) || json_is_false(v) || (json_is_array(v) && !json_array_size(v))) return;
    if (json_is_true(v)) {
        sb_printf(out, " %s", flag);
        return;
    }
    if (json_is_string(v)) {
        sb_printf(out, " %s %s", flag, json_string_value(v));
        return;
    }
    if (json_is_number(v)) {
        if (json_is_integer(v)) sb_printf(out, " %s %lld", flag, (long long)json_integer_value(v));
        else {
            flag_num(json_real_value(v), num, sizeof num);
            sb_printf(out, " %s %s", flag, num);
        }
        return;
    }
    if (!json_is_array(v)) return;
    size_t i;
    json_t *e;
    if (!strcmp(key, "len") && json_array_size(v) == 2) {
        long long a = json_integer_value(json_array_get(v, 0)), b = json_integer_value(json_array_get(v, 1));
        if (a == b) sb_printf(out, " %s %lld", flag, a);
        else sb_printf(out, " %s %lld-%lld", flag, a, b);
        return;
    }
    if (!strcmp(key, "at") || !strcmp(key, "train") || !strcmp(key, "freeze")) {
        sb_printf(out, " %s ", flag);
        json_array_foreach(v, i, e) {
            if (json_is_integer(e)) sb_printf(out, "%s%lld", i ? "," : "", (long long)json_integer_value(e));
            else sb_printf(out, "%s%s", i ? "," : "", json_string_value(e) ? json_string_value(e) : "?");
        }
        return;
    }
    json_array_foreach(v, i, e) {
        if (!strcmp(key, "mix")) {
            flag_num(json_number_value(json_object_get(e, "fraction")), num, sizeof num);
            sb_printf(out, " %s %s:%s", flag, json_string_value(json_object_get(e, "path")), num);
        } else if (!strcmp(key, "eval")) {
            sb_printf(out, " %s %s=%s", flag, json_string_value(json_object_get(e, "name")),
                      json_string_value(json_object_get(e, "program")));
            json_t *sp = json_object_get(e, "spurious");
            if (json_is_string(sp)) {
                flag_num(json_number_value(json_object_get(e, "rate")), num, sizeof num);
                sb_printf(out, ",spurious=%s,rate=%s", json_string_value(sp), num);
            }
        }
    }
}

void ft_config_banner(const FtConfig *cfg, StrBuf *out)
{
    /* one line per source, in the order flags, preset, defaults */
    const char *order[] = {"flag", "preset", "default", "checkpoint"};
    int lines = 0;
    for (size_t o = 0; o < ARRAY_LEN(order); o++) {
        StrBuf line;
        sb_init(&line);
        const char *label = NULL;
        const char *key;
        json_t *v;
        json_object_foreach(cfg->json, key, v) {
            if (!strcmp(key, "model") || !strcmp(key, "preset")) continue;
            json_t *sj = cfg->sources ? json_object_get(cfg->sources, key) : NULL;
            const char *src = json_is_string(sj) ? json_string_value(sj) : "checkpoint";
            if (strncmp(src, order[o], strlen(order[o]))) continue;
            size_t before = line.len;
            setting_text(key, v, &line);
            if (line.len == before) continue;
            const char *colon = strchr(src, ':');
            if (colon) sb_printf(&line, " (%s)", colon + 2);
            if (!label) label = src;
        }
        if (line.len) {
            char head[96];
            snprintf(head, sizeof head, "%.*s", (int)(strchr(label, ':') ? strchr(label, ':') - label : (long)strlen(label)),
                     label);
            sb_printf(out, "%s%s:%s\n", lines ? "          " : "settings  ", head, line.s);
            lines++;
        }
        sb_free(&line);
    }
    if (cfg->preset) ft_preset_notice(cfg, out);
}

static const char *const OPERATIONAL[] = {"output", "log", "log_every", "checkpoint", "checkpoint_every",
                                          "eval_every", "save_init"};

int ft_config_key_is_operational(const char *key)
{
    for (size_t i = 0; i < ARRAY_LEN(OPERATIONAL); i++)
        if (!strcmp(key, OPERATIONAL[i])) return 1;
    return 0;
}

const char *ft_config_flag(const char *key, char *buf, size_t cap)
{
    if (!strcmp(key, "model")) snprintf(buf, cap, "MODEL");
    else {
        snprintf(buf, cap, "--%s", key);
        for (char *c = buf; *c; c++)
            if (*c == '_') *c = '-';
    }
    return buf;
}

/* Typed readers: each names the flag on a bad value, and where the value came from when the
 * user did not give it (a preset, the default). */
typedef struct {
    json_t *j;
    StrBuf *err;
    int bad;
    json_t *sources;        /* or NULL */
} Reader;

/* " (from --preset jain2023)" or " (the default)" after a message about key's value; nothing
 * for a flag (the user knows they gave it) or without sources. */
static void source_note(const Reader *r, const char *key)
{
    json_t *sj = r->sources ? json_object_get(r->sources, key) : NULL;
    const char *s = json_string_value(sj);
    if (!s || !strcmp(s, "flag")) return;
    if (!strncmp(s, "preset ", 7)) sb_printf(r->err, " (from --%s)", s);
    else if (!strcmp(s, "default")) sb_printf(r->err, " (the default)");
    else sb_printf(r->err, " (from the %s)", s);
}

static json_t *get(Reader *r, const char *key)
{
    json_t *v = json_object_get(r->j, key);
    if (!v && !r->bad) {
        sb_printf(r->err, "configuration: missing key '%s'", key);
        r->bad = 1;
    }
    return v;
}

static void bad_value(Reader *r, const char *key, const char *what)
{
    if (r->bad) return;
    char flag[64];
    sb_printf(r->err, "%s %s", ft_config_flag(key, flag, sizeof flag), what);
    source_note(r, key);
    r->bad = 1;
}

static double get_num(Reader *r, const char *key)
{
    json_t *v = get(r, key);
    if (!v) return 0;
    if (!json_is_number(v)) {
        bad_value(r, key, "must be a number");
        return 0;
    }
    double x = json_number_value(v);
    if (!isfinite(x)) bad_value(r, key, "must be a finite number");
    return x;
}

static long long get_int(Reader *r, const char *key)
{
    json_t *v = get(r, key);
    if (!v) return 0;
    if (!json_is_integer(v)) {
        bad_value(r, key, "must be an integer");
        return 0;
    }
    return json_integer_value(v);
}

static const char *get_str(Reader *r, const char *key, int nullable)
{
    json_t *v = get(r, key);
    if (!v) return NULL;
    if (json_is_null(v) && nullable) return NULL;
    if (!json_is_string(v)) {
        bad_value(r, key, nullable ? "must be a string or null" : "must be a string");
        return NULL;
    }
    return json_string_value(v);
}

static char **get_strs(Reader *r, const char *key, int *n)
{
    json_t *v = get(r, key);
    *n = 0;
    if (!v) return NULL;
    if (!json_is_array(v)) {
        bad_value(r, key, "must be a list");
        return NULL;
    }
    char **out = xcalloc(json_array_size(v) + 1, sizeof *out);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_string(e)) {
            bad_value(r, key, "must be a list of strings");
            break;
        }
        out[(*n)++] = (char *)json_string_value(e);
    }
    return out;
}

static void range_d(Reader *r, const char *key, double x, double lo, int lo_open, double hi, int hi_open,
                    const char *expect)
{
    if (r->bad) return;
    int ok = (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
    if (!ok) {
        char flag[64], num[64];
        fmt_double(x, num, sizeof num);
        sb_printf(r->err, "%s must be %s, got %s", ft_config_flag(key, flag, sizeof flag), expect, num);
        source_note(r, key);
        r->bad = 1;
    }
}

static void range_l(Reader *r, const char *key, long long x, long long lo, long long hi, const char *expect)
{
    if (r->bad) return;
    if (x < lo || x > hi) {
        char flag[64];
        sb_printf(r->err, "%s must be %s, got %lld", ft_config_flag(key, flag, sizeof flag), expect, x);
        source_note(r, key);
        r->bad = 1;
    }
}

/* A number in a range: the value of key, or 0 after the first bad value. */
static double num_in(Reader *r, const char *key, double lo, int lo_open, double hi, int hi_open, const char *expect)
{
    double x = get_num(r, key);
    range_d(r, key, x, lo, lo_open, hi, hi_open, expect);
    return x;
}

static long long int_in(Reader *r, const char *key, long long lo, long long hi, const char *expect)
{
    long long x = get_int(r, key);
    range_l(r, key, x, lo, hi, expect);
    return x;
}

static int valid_eval_name(const char *s)
{
    if (!*s || strlen(s) > 63) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '-' || *s == '.'))
            return 0;
    return 1;
}

int ft_config_parse(FtConfig *cfg, json_t *json, StrBuf *err)
{
    return ft_config_parse_sourced(cfg, json, NULL, err);
}

int ft_config_parse_sourced(FtConfig *cfg, json_t *json, json_t *sources, StrBuf *err)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->json = json_incref(json);
    cfg->sources = sources ? json_incref(sources) : NULL;
    Reader rd = {json, err, 0, sources};
    Reader *r = &rd;
    if (!json_is_object(json)) return sb_fail(err, "configuration: expected a JSON object");
    const char *key;
    json_t *v;
    json_t *defaults = ft_config_defaults();
    json_object_foreach(json, key, v) {
        if (!json_object_get(defaults, key)) {
            sb_printf(err, "configuration: unknown key '%s'", key);
            json_decref(defaults);
            return -1;
        }
    }
    json_decref(defaults);

    cfg->model = get_str(r, "model", 1);
    cfg->output = get_str(r, "output", 1);
    cfg->checkpoint = get_str(r, "checkpoint", 1);
    cfg->log = get_str(r, "log", 1);
    DataSpec *d = &cfg->data;
    d->task = get_str(r, "task", 1);
    d->data = get_str(r, "data", 1);
    d->spurious = get_str(r, "spurious", 1);
    json_t *rate = get(r, "spurious_rate");
    if (rate && !json_is_null(rate)) {
        d->spurious_rate = num_in(r, "spurious_rate", 0, 0, 1, 0, "a number from 0 to 1");
        if (!d->spurious && !r->bad) {
            sb_printf(err, "--spurious-rate needs --spurious PRED.rasp");
            r->bad = 1;
        }
    } else if (d->spurious && !r->bad) {
        sb_printf(err, "--spurious needs --spurious-rate C (the fraction of samples where the predicate holds)");
        r->bad = 1;
    }
    const char *others = get_str(r, "spurious_others", 0);
    if (others && !strcmp(others, "uniform")) {
        d->spurious_uniform = 1;
    } else if (others && strcmp(others, "exclude") && !r->bad) {
        sb_printf(err, "--spurious-others must be exclude or uniform, got '%s'", others);
        source_note(r, "spurious_others");
        r->bad = 1;
    }
    if (d->spurious_uniform && !d->spurious && !r->bad) {
        sb_printf(err, "--spurious-others uniform needs --spurious PRED.rasp");
        r->bad = 1;
    }
    json_t *mix = get(r, "mix");
    if (mix && !r->bad) {
        size_t i;
        json_t *e;
        if (!json_is_array(mix) || json_array_size(mix) > DATA_MAX_MIX) bad_value(r, "mix", "must be a list of at most 16 FILE.rasp:FRACTION");
        else
            json_array_foreach(mix, i, e) {
                json_t *pj = json_object_get(e, "path"), *fj = json_object_get(e, "fraction");
                if (!json_is_string(pj) || !json_is_number(fj)) {
                    bad_value(r, "mix", "must be FILE.rasp:FRACTION");
                    break;
                }
                d->mix_path[d->nmix] = json_string_value(pj);
                d->mix_frac[d->nmix] = json_number_value(fj);
                range_d(r, "mix", d->mix_frac[d->nmix], 0, 1, 1, 0, "FILE.rasp:FRACTION with FRACTION in (0, 1]");
                d->nmix++;
            }
    }
    json_t *len = get(r, "len");
    if (len && !json_is_null(len)) {
        if (!json_is_array(len) || json_array_size(len) != 2 || !json_is_integer(json_array_get(len, 0)) ||
            !json_is_integer(json_array_get(len, 1)))
            bad_value(r, "len", "must be N or MIN-MAX");
        else {
            d->len_min = (int)json_integer_value(json_array_get(len, 0));
            d->len_max = (int)json_integer_value(json_array_get(len, 1));
            if (!r->bad && (d->len_min < 1 || d->len_max < d->len_min)) {
                sb_printf(err, "--len must be N or MIN-MAX with 1 <= MIN <= MAX, got %d-%d", d->len_min, d->len_max);
                r->bad = 1;
            }
        }
    }
    json_t *nr = get(r, "no_repeat");
    if (nr && !json_is_boolean(nr)) bad_value(r, "no_repeat", "must be true or false");
    d->no_repeat = json_is_true(nr);
    json_t *at = get(r, "at");
    if (at && !r->bad) {
        if (!json_is_array(at) || json_array_size(at) > FT_MAX_AT) bad_value(r, "at", "must be a list of RASP indices");
        else {
            cfg->at = xcalloc(json_array_size(at) + 1, sizeof(int));
            size_t i;
            json_t *e;
            json_array_foreach(at, i, e) {
                if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > RASP_MAX_LEN) {
                    bad_value(r, "at", "must list RASP indices (integers >= 0)");
                    break;
                }
                cfg->at[d->nat++] = (int)json_integer_value(e);
            }
            d->at = cfg->at;
        }
    }
    d->max_tries = (long)int_in(r, "max_tries", 1, 1000000000LL, "a positive integer");

    cfg->logit_scale = num_in(r, "logit_scale", 0, 1, 1e6, 0, "> 0");
    const char *opt = get_str(r, "optimizer", 0);
    if (opt && optim_parse_kind(opt, &cfg->opt.kind) && !r->bad) {
        sb_printf(err, "--optimizer must be sgd or adamw, got '%s'", opt);
        source_note(r, "optimizer");
        r->bad = 1;
    }
    cfg->opt.lr = num_in(r, "lr", 0, 1, 1e6, 0, "> 0");
    cfg->opt.momentum = num_in(r, "momentum", 0, 0, 1, 1, "in [0, 1)");
    cfg->opt.beta1 = num_in(r, "beta1", 0, 0, 1, 1, "in [0, 1)");
    cfg->opt.beta2 = num_in(r, "beta2", 0, 0, 1, 1, "in [0, 1)");
    cfg->opt.eps = num_in(r, "eps", 0, 1, 1, 0, "in (0, 1]");
    cfg->opt.weight_decay = num_in(r, "weight_decay", 0, 0, 1e6, 0, ">= 0");
    cfg->opt.clip = num_in(r, "clip", 0, 0, 1e30, 0, ">= 0 (0 turns clipping off)");
    /* 0 steps: the output is the (noised) start */
    cfg->opt.steps = (long)int_in(r, "steps", 0, 1000000000LL, "a non-negative integer");
    {
        /* the bound is another setting: name its value, and where it came from */
        char expect[160];
        StrBuf note;
        sb_init(&note);
        Reader sr = {json, &note, 0, r->sources};
        source_note(&sr, "steps");
        /* note is " (the default)" or " (from --preset NAME)": keep what is inside the brackets */
        if (note.len > 3)
            snprintf(expect, sizeof expect, "from 0 to --steps (%ld, %.*s)", cfg->opt.steps, (int)note.len - 3,
                     note.s + 2);
        else
            snprintf(expect, sizeof expect, "from 0 to --steps (%ld)", cfg->opt.steps);
        sb_free(&note);
        cfg->opt.warmup = (long)int_in(r, "warmup", 0, cfg->opt.steps, expect);
    }
    const char *sched = get_str(r, "schedule", 0);
    if (sched && optim_parse_schedule(sched, &cfg->opt.schedule) && !r->bad) {
        sb_printf(err, "--schedule must be cosine or constant, got '%s'", sched);
        r->bad = 1;
    }
    cfg->opt.min_lr_ratio = num_in(r, "min_lr_ratio", 0, 0, 1, 0, "from 0 to 1");
    cfg->batch = (int)int_in(r, "batch", 1, 1000000, "a positive integer");
    cfg->init_noise = num_in(r, "init_noise", 0, 0, 1e6, 0, ">= 0");
    /* absent from checkpoints written before it existed: those computed with subnormals */
    json_t *fz = json_object_get(json, "flush_subnormals");
    if (fz && !json_is_boolean(fz)) bad_value(r, "flush_subnormals", "must be true or false");
    cfg->flush_subnormals = json_is_true(fz);
    if (cfg->flush_subnormals && !fpm_flush_available())
        bad_value(r, "flush_subnormals", "is not available on this CPU (it sets x86's SSE FTZ and DAZ bits)");
    cfg->train = get_strs(r, "train", &cfg->ntrain);
    cfg->freeze = get_strs(r, "freeze", &cfg->nfreeze);
    cfg->preset = get_str(r, "preset", 1);
    if (cfg->preset && !r->bad) {
        json_t *pv = ft_preset_values(cfg->preset, NULL);
        if (!pv) bad_value(r, "preset", "names no known preset");
        json_decref(pv);
    }
    cfg->seed = (uint64_t)int_in(r, "seed", 0, INT64_MAX, "a non-negative integer");

    json_t *ev = get(r, "eval");
    if (ev && !r->bad) {
        if (!json_is_array(ev) || json_array_size(ev) > FT_MAX_EVAL) bad_value(r, "eval", "must be a list of at most 32 sets");
        else {
            size_t i;
            json_t *e;
            json_array_foreach(ev, i, e) {
                FtEval *x = &cfg->evals[cfg->neval];
                json_t *nj = json_object_get(e, "name"), *pj = json_object_get(e, "program");
                json_t *sj = json_object_get(e, "spurious"), *rj = json_object_get(e, "rate");
                if (!json_is_string(nj) || !json_is_string(pj) || (sj && !json_is_null(sj) && !json_is_string(sj)) ||
                    (rj && !json_is_null(rj) && !json_is_number(rj))) {
                    bad_value(r, "eval", "must be NAME=FILE.rasp[,spurious=PRED.rasp,rate=C]");
                    break;
                }
                x->name = json_string_value(nj);
                x->program = json_string_value(pj);
                x->spurious = json_is_string(sj) ? json_string_value(sj) : NULL;
                x->rate = json_is_number(rj) ? json_number_value(rj) : -1;
                if (!valid_eval_name(x->name)) {
                    sb_printf(err, "--eval %s: a set's name is 1 to 63 letters, digits, '_', '-' or '.'", x->name);
                    r->bad = 1;
                    break;
                }
                for (int k = 0; k < cfg->neval; k++)
                    if (!strcmp(cfg->evals[k].name, x->name)) {
                        sb_printf(err, "--eval %s: two sets with the same name", x->name);
                        r->bad = 1;
                    }
                if (r->bad) break;
                if (x->spurious && x->rate < 0) {
                    sb_printf(err, "--eval %s: spurious= needs rate=C", x->name);
                    r->bad = 1;
                    break;
                }
                if (!x->spurious && x->rate >= 0) {
                    sb_printf(err, "--eval %s: rate= needs spurious=PRED.rasp", x->name);
                    r->bad = 1;
                    break;
                }
                if (x->spurious && !(x->rate >= 0 && x->rate <= 1)) {
                    sb_printf(err, "--eval %s: rate must be a number from 0 to 1", x->name);
                    r->bad = 1;
                    break;
                }
                cfg->neval++;
            }
        }
    }
    cfg->eval_every = (long)int_in(r, "eval_every", 0, 1000000000LL, ">= 0 (0: only before and after training)");
    cfg->eval_size = (int)int_in(r, "eval_size", 1, 10000000, "a positive integer");
    cfg->eval_seed = (uint64_t)int_in(r, "eval_seed", 0, INT64_MAX, "a non-negative integer");
    cfg->log_every = (long)int_in(r, "log_every", 1, 1000000000LL, "a positive integer");
    cfg->checkpoint_every =
        (long)int_in(r, "checkpoint_every", 0, 1000000000LL, ">= 0 (0: only when interrupted)");
    /* "save_init" may be absent: checkpoints written before the flag existed have no such key */
    json_t *si = json_object_get(json, "save_init");
    if (si && !json_is_null(si)) cfg->save_init = get_str(r, "save_init", 1);
    /* "stop_when" may be absent: checkpoints written before the flag existed have no such key */
    json_t *sw = json_object_get(json, "stop_when");
    if (sw && !json_is_null(sw) && !r->bad) {
        char name[64];
        if (!json_is_string(sw)) bad_value(r, "stop_when", "must be NAME>=ACC");
        else if (ft_parse_stop_when(json_string_value(sw), name, sizeof name, &cfg->stop_acc, err)) r->bad = 1;
        else {
            cfg->stop_when = json_string_value(sw);
            cfg->stop_eval = -1;
            for (int i = 0; i < cfg->neval; i++)
                if (!strcmp(cfg->evals[i].name, name)) cfg->stop_eval = i;
            if (cfg->stop_eval < 0) {
                sb_printf(err, "--stop-when '%s': no --eval set is named '%s' (", cfg->stop_when, name);
                if (!cfg->neval) sb_printf(err, "give --eval %s=FILE.rasp", name);
                for (int i = 0; i < cfg->neval; i++)
                    sb_printf(err, "%s%s", i ? ", " : "the sets are: ", cfg->evals[i].name);
                sb_printf(err, ")");
                r->bad = 1;
            }
        }
    }
    if (!r->bad && !!d->task == !!d->data) {
        sb_printf(err, "%s", d->task ? "give either --task or --data, not both"
                                     : "no training data: give --task FILE.rasp (or --data FILE.jsonl)");
        r->bad = 1;
    }
    if (!r->bad && !cfg->output) {
        sb_printf(err, "no output file: give -o OUT.safetensors");
        r->bad = 1;
    }
    if (!r->bad && !cfg->model) {
        sb_printf(err, "no model: give the model file to fine-tune (or --resume CHECKPOINT)");
        r->bad = 1;
    }
    d->task_flag = "--task";
    return r->bad ? -1 : 0;
}

void ft_config_free(FtConfig *cfg)
{
    json_decref(cfg->json);
    json_decref(cfg->sources);
    free(cfg->at);
    free(cfg->train);
    free(cfg->freeze);
    memset(cfg, 0, sizeof *cfg);
}

int ft_parse_stop_when(const char *s, char *name, size_t cap, double *acc, StrBuf *err)
{
    /* NAME:ACC or NAME>=ACC (set names hold neither ':' nor '>') */
    const char *ge = strstr(s, ">="), *colon = strchr(s, ':');
    const char *sep = ge && (!colon || ge < colon) ? ge : colon;
    size_t n = sep ? (size_t)(sep - s) : 0;
    if (!sep || !n || n >= cap) {
        sb_printf(err, "--stop-when '%s': expected NAME:ACC (or 'NAME>=ACC', quoted) with NAME an --eval set, "
                       "e.g. pt:0.9 or pt:90%%", s);
        return -1;
    }
    memcpy(name, s, n);
    name[n] = 0;
    const char *num = sep + (sep == ge ? 2 : 1);
    char *end;
    errno = 0;
    double x = strtod(num, &end);
    int pct = *end == '%' && end > num;
    if (pct) {
        end++;
        x /= 100;   /* exact division: "90%" is the same double as "0.9" */
    }
    if (!*num || *end || errno || !(x >= 0 && x <= 1)) {
        sb_printf(err, "--stop-when '%s': ACC must be a number from 0 to 1 (or a percentage up to 100%%), got '%s'",
                  s, num);
        return -1;
    }
    *acc = x;
    return 0;
}

void ft_stop_when_text(const char *name, double acc, char *buf, size_t cap)
{
    char a[64];
    fmt_double(acc, a, sizeof a);
    snprintf(buf, cap, "%s>=%s", name, a);
}

json_t *ft_parse_eval_spec(const char *s, StrBuf *err)
{
    const char *eq = strchr(s, '=');
    if (!eq || eq == s) {
        sb_printf(err, "--eval '%s': expected NAME=FILE.rasp[,spurious=PRED.rasp,rate=C]", s);
        return NULL;
    }
    json_t *o = json_object();
    json_object_set_new(o, "name", json_stringn(s, (size_t)(eq - s)));
    char *rest = xstrdup(eq + 1);
    char *save = NULL;
    int first = 1, rc = 0;
    for (char *part = strtok_r(rest, ",", &save); part; part = strtok_r(NULL, ",", &save), first = 0) {
        if (first) {
            json_object_set_new(o, "program", json_string(part));
            continue;
        }
        if (!strncmp(part, "spurious=", 9) && part[9]) json_object_set_new(o, "spurious", json_string(part + 9));
        else if (!strncmp(part, "rate=", 5)) {
            char *end;
            double x = strtod(part + 5, &end);
            if (!part[5] || *end || !(x >= 0 && x <= 1)) {
                sb_printf(err, "--eval '%s': rate must be a number from 0 to 1, got '%s'", s, part + 5);
                rc = -1;
                break;
            }
            json_object_set_new(o, "rate", json_real(x));
        } else {
            sb_printf(err, "--eval '%s': unknown part '%s' (expected spurious=PRED.rasp or rate=C)", s, part);
            rc = -1;
            break;
        }
    }
    free(rest);
    if (!rc && !json_object_get(o, "program")) {
        sb_printf(err, "--eval '%s': expected NAME=FILE.rasp[,spurious=PRED.rasp,rate=C]", s);
        rc = -1;
    }
    if (rc) {
        json_decref(o);
        return NULL;
    }
    if (!json_object_get(o, "spurious")) json_object_set_new(o, "spurious", json_null());
    if (!json_object_get(o, "rate")) json_object_set_new(o, "rate", json_null());
    return o;
}

static json_t *state_of(const Model *m, const char *path, StrBuf *err)
{
    json_t *s = json_object_get(m->meta_extra, FT_STATE_KEY);
    if (!s) {
        sb_printf(err, "%s: not a tracc finetune checkpoint (no '%s' metadata)", path, FT_STATE_KEY);
        return NULL;
    }
    json_error_t je;
    json_t *st = json_string_value(s) ? json_loads(json_string_value(s), 0, &je) : NULL;
    if (!st || !json_is_object(st) || !json_is_integer(json_object_get(st, "step")) ||
        !json_is_object(json_object_get(st, "config"))) {
        sb_printf(err, "%s: metadata '%s': expected an object with step and config", path, FT_STATE_KEY);
        json_decref(st);
        return NULL;
    }
    return st;
}

json_t *ft_checkpoint_config(const char *path, json_t **sources, StrBuf *err)
{
    Model *m = model_load(path, err);
    if (!m) return NULL;
    json_t *st = state_of(m, path, err);
    model_free(m);
    if (!st) return NULL;
    json_t *c = json_incref(json_object_get(st, "config"));
    if (sources) {
        json_t *sj = json_object_get(st, "config_sources");
        *sources = json_is_object(sj) ? json_incref(sj) : NULL;
    }
    json_decref(st);
    return c;
}

char *ft_default_checkpoint(const char *output)
{
    StrBuf b;
    sb_init(&b);
    size_t n = strlen(output);
    const char *ext = ".safetensors";
    size_t ne = strlen(ext);
    if (n > ne && !strcmp(output + n - ne, ext)) {
        sb_putn(&b, output, n - ne);
        sb_puts(&b, ".ckpt.safetensors");
    } else {
        sb_puts(&b, output);
        sb_puts(&b, ".ckpt");
    }
    char *path = sb_steal(&b);
    sb_free(&b);   /* sb_steal leaves an empty buffer behind */
    return path;
}

/* ---------------------------------------------------------------- evaluation */

typedef struct {
    const FtEval *spec;
    DataGen *gen;
    DataBatch batch;
    int leader;         /* index of the set whose inputs these are (itself if first) */
    FtEvalResult res;
} EvalSet;

#define EVAL_CHUNK 256

static int same_inputs(const DataBatch *a, const DataBatch *b)
{
    return a->B == b->B && a->T == b->T && !memcmp(a->lens, b->lens, sizeof(int) * (size_t)a->B) &&
           !memcmp(a->tokens, b->tokens, sizeof(int32_t) * (size_t)a->B * a->T);
}

static int first_argmax(const float *x, int n)
{
    int best = 0;
    for (int j = 1; j < n; j++)
        if (x[j] > x[best]) best = j;
    return best;
}

/* Loss and correctness of one row of logits (VO) against row r of a set's batch: *correct
 * by the argmax (numerical: the nearest output value), *decoded as `tracc run` reads it (no
 * value unless the top logit is above DEC_NONE_BELOW; numerical: within verify's tolerance). */
static double row_loss(const Model *m, const float *lg, float scale, const DataBatch *bt, int r, int *correct,
                       int *decoded, const DataGen *gen)
{
    int VO = m->cfg.d_vocab_out;
    if (m->output_numerical) {
        double e = (double)lg[0] - bt->target_num[r];
        *correct = bt->target[r] >= 0 && data_gen_nearest_value(gen, lg[0]) == bt->target[r];
        *decoded = fabs(e) <= VERIFY_NUM_TOL * fmax(1.0, fabs((double)bt->target_num[r]));
        return e * e;
    }
    double maxv = scale * lg[0];
    for (int j = 1; j < VO; j++)
        if (scale * lg[j] > maxv) maxv = scale * lg[j];
    double sum = 0, others = 0;
    int y = bt->target[r];
    for (int j = 0; j < VO; j++) {
        double e = exp((double)scale * lg[j] - maxv);
        sum += e;
        if (j != y) others += e;
    }
    *correct = first_argmax(lg, VO) == y;
    *decoded = dec_output_column(m, lg) == y;
    /* as bwd_crossentropy: log1p keeps the digits of a small loss */
    if ((double)scale * lg[y] == maxv) return log1p(others);
    return log(sum) + maxv - (double)scale * lg[y];
}

/* One chunk of one input set: what every set sharing those inputs scores on it. */
typedef struct {
    double lsum;
    long nrows, nok, nok_dec, nseq;
} EvalPart;

typedef struct {
    EvalSet *sets;
    int nsets;
    const Model *m;
    float scale;
    FwdState *fs;       /* (nthreads) */
    int *task_set;      /* (ntasks) leader set of each task */
    int *task_b0;       /* (ntasks) first sequence of each task */
    EvalPart *parts;    /* (ntasks, nsets) */
    int *rc;            /* (ntasks) */
} EvalJob;

static void eval_task(void *ctx, int task, int thread)
{
    EvalJob *j = ctx;
    int g = j->task_set[task], b0 = j->task_b0[task];
    const DataBatch *in = &j->sets[g].batch;
    int nb = in->B - b0 < EVAL_CHUNK ? in->B - b0 : EVAL_CHUNK;
    int VO = j->m->cfg.d_vocab_out;
    FwdOptions fo = FWD_OPTIONS_DEFAULT;
    FwdState *fs = &j->fs[thread];
    StrBuf err;
    sb_init(&err);
    j->rc[task] = fwd_forward(fs, j->m, in->tokens + (size_t)b0 * in->T, in->lens + b0, nb, in->T, &fo, &err);
    sb_free(&err);
    if (j->rc[task]) return;
    for (int i = 0; i < j->nsets; i++) {
        if (j->sets[i].leader != g) continue;
        EvalPart *pt = &j->parts[(size_t)task * j->nsets + i];
        const DataBatch *bt = &j->sets[i].batch;
        for (int b = b0; b < b0 + nb; b++) {
            int r0 = bt->row_start[b], r1 = bt->row_start[b + 1];
            if (r0 == r1) continue;
            int all = 1, all_dec = 1;
            for (int r = r0; r < r1; r++) {
                const float *lg = fs->logits + ((size_t)(b - b0) * in->T + bt->pos[r]) * VO;
                int ok, dec;
                pt->lsum += row_loss(j->m, lg, j->scale, bt, r, &ok, &dec, j->sets[i].gen);
                all &= ok;
                all_dec &= dec;
                pt->nrows++;
            }
            pt->nseq++;
            pt->nok += all;
            pt->nok_dec += all_dec;
        }
    }
}

/* Accuracy and loss of every set; chunks run on the pool's threads and are added up in
 * order, so the figures do not depend on the number of threads. */
static int evaluate(EvalSet *sets, int nsets, const Model *m, float scale, BwdPool *pool, FwdState *fs,
                    StrBuf *err)
{
    int ntasks = 0;
    for (int g = 0; g < nsets; g++)
        if (sets[g].leader == g) ntasks += (sets[g].batch.B + EVAL_CHUNK - 1) / EVAL_CHUNK;
    EvalJob j = {sets, nsets, m, scale, fs, xcalloc((size_t)ntasks + 1, sizeof(int)),
                 xcalloc((size_t)ntasks + 1, sizeof(int)), xcalloc((size_t)ntasks * nsets + 1, sizeof(EvalPart)),
                 xcalloc((size_t)ntasks + 1, sizeof(int))};
    int t = 0;
    for (int g = 0; g < nsets; g++)
        if (sets[g].leader == g)
            for (int b0 = 0; b0 < sets[g].batch.B; b0 += EVAL_CHUNK) {
                j.task_set[t] = g;
                j.task_b0[t++] = b0;
            }
    bwd_pool_run(pool, ntasks, eval_task, &j);
    int rc = 0;
    for (int i = 0; i < ntasks; i++)
        if (j.rc[i]) rc = -1;
    if (rc) sb_printf(err, "evaluation: the forward pass failed");
    for (int i = 0; i < nsets; i++) {
        EvalPart tot = {0, 0, 0, 0, 0};
        for (int k = 0; k < ntasks; k++) {
            const EvalPart *pt = &j.parts[(size_t)k * nsets + i];
            tot.lsum += pt->lsum;
            tot.nrows += pt->nrows;
            tot.nok += pt->nok;
            tot.nok_dec += pt->nok_dec;
            tot.nseq += pt->nseq;
        }
        sets[i].res.n = (int)tot.nseq;
        sets[i].res.acc = tot.nseq ? (double)tot.nok / tot.nseq : 0;
        sets[i].res.acc_decoded = tot.nseq ? (double)tot.nok_dec / tot.nseq : 0;
        sets[i].res.loss = tot.nrows ? tot.lsum / tot.nrows : 0;
    }
    free(j.task_set);
    free(j.task_b0);
    free(j.parts);
    free(j.rc);
    return rc;
}

/* ---------------------------------------------------------------- the run */

typedef struct {
    const FtConfig *cfg;
    const FtHooks *hooks;
    json_t *config;         /* cfg->json with the resolved len and checkpoint */
    json_t *files;          /* [{"role", "path", "sha256"}] */
    char parent_sha[65];
    json_t *parent_provenance;
    char blas[256];         /* OpenBLAS kernels trained on so far (FtResult.blas) */
    Model *m;
    uint8_t *trainable;
    Optim opt;
    DataGen *gen;
    EvalSet *evals;
    int neval;
    BwdPool *pool;
    FwdState *fs;           /* (threads) for evaluation */
    OfStream *log;   /* --log: every line's write is checked (common/outfile.h) */
    const char *ckpt_path;
    FtResult *res;
    json_t *last_eval;      /* {"name": {"acc", "acc_decoded", "loss", "n"}} */
    json_t *sources;        /* where each setting came from (the original run's), or NULL */
    double t0;
    long stopped_at;        /* --stop-when: the step it held at, or -1 */
    double best_acc;        /* --stop-when: its set's best accuracy so far (NAN: none yet) */
    long best_step;
} Run;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void file_sha(const char *path, char hex[65])
{
    StrBuf err;
    sb_init(&err);
    if (sha256_file(path, hex, &err)) strcpy(hex, "unreadable");
    sb_free(&err);
}

void ft_strip_training_state(Model *m)
{
    model_clear_extra_tensors(m);
    model_set_meta(m, FT_STATE_KEY, NULL);
}

static json_t *eval_json(const Run *r)
{
    json_t *o = json_object();
    for (int i = 0; i < r->neval; i++) {
        const FtEvalResult *e = &r->evals[i].res;
        json_object_set_new(o, r->evals[i].spec->name, json_pack("{s:f, s:f, s:f, s:i}", "acc", e->acc, "acc_decoded",
                                                                 e->acc_decoded, "loss", e->loss, "n", e->n));
    }
    return o;
}

/* The settings that shaped the weights: the configuration without the operational keys.
 * "flush_subnormals" is named only when set, so a run without it records what every run
 * recorded before the setting existed (its provenance, and so its bytes, are unchanged). */
static json_t *shaping_config(const json_t *config, int flushed)
{
    json_t *c = json_deep_copy(config);
    for (size_t i = 0; i < ARRAY_LEN(OPERATIONAL); i++) json_object_del(c, OPERATIONAL[i]);
    json_object_del(c, "model");
    if (!flushed) json_object_del(c, "flush_subnormals");
    return c;
}

static void stop_text(const FtConfig *cfg, char *buf, size_t cap)
{
    ft_stop_when_text(cfg->evals[cfg->stop_eval].name, cfg->stop_acc, buf, cap);
}

static json_t *provenance(const Run *r, long steps, double train_loss)
{
    json_t *p = json_object();
    StrBuf tool;
    sb_init(&tool);
    sb_printf(&tool, "tracc %s finetune", r->hooks && r->hooks->version ? r->hooks->version : "?");
    json_object_set_new(p, "tool", json_string(tool.s));
    sb_free(&tool);
    json_object_set_new(p, "parent_sha256", json_string(r->parent_sha));
    json_object_set_new(p, "parent_provenance", json_deep_copy(r->parent_provenance));
    json_object_set_new(p, "config", shaping_config(r->config, r->cfg->flush_subnormals));
    if (r->sources) json_object_set_new(p, "config_sources", shaping_config(r->sources, r->cfg->flush_subnormals));
    json_object_set_new(p, "files", json_deep_copy(r->files));
    json_object_set_new(p, "steps", json_integer(steps));
    json_object_set_new(p, "blas", json_string(r->blas));
    json_object_set_new(p, "train_loss", isfinite(train_loss) ? json_real(train_loss) : json_null());
    json_object_set_new(p, "eval", r->last_eval ? json_deep_copy(r->last_eval) : json_object());
    if (r->cfg->stop_when) {
        char sw[128];
        stop_text(r->cfg, sw, sizeof sw);
        json_object_set_new(p, "stop_when", json_string(sw));
        json_object_set_new(p, "stopped_at", r->stopped_at >= 0 ? json_integer(r->stopped_at) : json_null());
    }
    return p;
}

/* The state the data stream's generator starts step `step` from (xoshiro256** words in hex).
 * It is recomputed, not carried: a resumed run checks it, so a checkpoint from a tracc whose
 * stream differs is refused instead of silently continuing on other data. */
static json_t *rng_state_json(uint64_t seed, long step)
{
    Rng g;
    rng_seed(&g, data_derive_seed(seed, 1, (uint64_t)step));
    json_t *a = json_array();
    for (int i = 0; i < 4; i++) {
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)g.s[i]);
        json_array_append_new(a, json_string(hex));
    }
    json_t *o = json_pack("{s:s, s:I, s:I, s:o}", "algorithm", "xoshiro256**", "seed", (json_int_t)seed, "step",
                          (json_int_t)step, "state", a);
    return o;
}

static int write_checkpoint(Run *r, long step, double train_loss, StrBuf *err)
{
    if (optim_save(&r->opt, r->m, err)) return -1;
    json_t *st = json_object();
    json_object_set_new(st, "step", json_integer(step));
    json_object_set_new(st, "config", json_deep_copy(r->config));
    if (r->sources) json_object_set_new(st, "config_sources", json_deep_copy(r->sources));
    json_object_set_new(st, "parent_sha256", json_string(r->parent_sha));
    json_object_set_new(st, "parent_provenance", json_deep_copy(r->parent_provenance));
    json_object_set_new(st, "files", json_deep_copy(r->files));
    json_object_set_new(st, "blas", json_string(r->blas));
    json_object_set_new(st, "eval", r->last_eval ? json_deep_copy(r->last_eval) : json_object());
    json_object_set_new(st, "train_loss", isfinite(train_loss) ? json_real(train_loss) : json_null());
    json_object_set_new(st, "optimizer_state",
                        r->opt.cfg.kind == OPTIM_SGD ? json_pack("[s]", OPTIM_TENSOR_MOMENTUM)
                                                     : json_pack("[s, s]", OPTIM_TENSOR_ADAM_M, OPTIM_TENSOR_ADAM_V));
    json_object_set_new(st, "data_stream", json_string("batch s is a pure function of (seed, s)"));
    json_object_set_new(st, "rng", rng_state_json(r->cfg->seed, step));
    if (r->cfg->stop_when)   /* so a resumed run still reports the best of the whole run */
        json_object_set_new(st, "stop_best", isnan(r->best_acc) ? json_null()
                                                 : json_pack("{s:f, s:I}", "acc", r->best_acc, "step",
                                                             (json_int_t)r->best_step));
    char *text = json_dumps(st, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(st);
    model_set_meta(r->m, FT_STATE_KEY, text);
    free(text);
    json_t *pv = provenance(r, step, train_loss);
    model_set_provenance(r->m, pv);   /* takes its own reference */
    json_decref(pv);
    int rc = model_save(r->m, r->ckpt_path, err);
    if (!rc) {
        snprintf(r->res->checkpoint, sizeof r->res->checkpoint, "%s", r->ckpt_path);
        r->res->checkpoint_step = step;
    }
    return rc;
}

static void log_line(Run *r, json_t *o)
{
    if (!r->log) {
        json_decref(o);
        return;
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    of_stream_line(r->log, s);   /* a failure stops the run at the next step (of_stream_failed) */
    free(s);
}

/* On resume, keep the log's lines up to the checkpoint's step (a killed run may have logged
 * past it; those steps will be logged again). */
static int trim_log(const char *path, long step, StrBuf *err)
{
    size_t len;
    char *text = read_file(path, &len);
    if (!text) return errno == ENOENT ? 0 : (sb_printf(err, "--log %s: cannot read: %s", path, strerror(errno)), -1);
    StrBuf keep;
    sb_init(&keep);
    char *line = text;
    while (line < text + len) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        if (!nl) break;   /* a partial last line */
        json_t *o = json_loadb(line, (size_t)(nl - line), 0, NULL);
        json_t *sj = o ? json_object_get(o, "step") : NULL;
        if (json_is_integer(sj) && json_integer_value(sj) <= step) sb_putn(&keep, line, (size_t)(nl - line + 1));
        json_decref(o);
        line = nl + 1;
    }
    free(text);
    int rc = of_write(path, keep.s, keep.len, err);
    sb_free(&keep);
    return rc;
}

static int all_finite(const Model *m, const uint8_t *trainable)
{
    for (int t = 0; t < m->ntensors; t++) {
        if (!trainable[t]) continue;
        const float *w = m->params_memory + m->tensors[t].offset;
        for (size_t i = 0; i < m->tensors[t].numel; i++)
            if (!isfinite(w[i])) return 0;
    }
    return 1;
}

static void progress(Run *r, long step, double loss, double lr, double gn, long done, int evaluated)
{
    if (!r->hooks || !r->hooks->progress) return;
    FtEvalResult ev[FT_MAX_EVAL];
    for (int i = 0; i < r->neval; i++) {
        ev[i] = r->evals[i].res;
    }
    FtProgress p = {step, r->cfg->opt.steps, loss, lr, gn, now_s() - r->t0, done, evaluated, r->neval, ev};
    r->hooks->progress(r->hooks->ctx, &p);
}

/* The trainable tensor with the largest gradient norm, skipping `skip1` and `skip2`. */
static int grad_top(const Run *r, const double *per, int skip1, int skip2)
{
    int best = -1;
    for (int t = 0; t < r->m->ntensors; t++)
        if (r->trainable[t] && t != skip1 && t != skip2 && (best < 0 || per[t] > per[best])) best = t;
    return best;
}

/* "; largest gradients at step K: NAME NORM, NAME NORM, NAME NORM" */
static void grad_top_text(const Run *r, const double *per, long step, StrBuf *out)
{
    int a = grad_top(r, per, -1, -1);
    if (a < 0) return;
    int b = grad_top(r, per, a, -1), c = b < 0 ? -1 : grad_top(r, per, a, b);
    sb_printf(out, "; largest gradients at step %ld: %s %.3g", step, r->m->tensors[a].name, per[a]);
    if (b >= 0) sb_printf(out, ", %s %.3g", r->m->tensors[b].name, per[b]);
    if (c >= 0) sb_printf(out, ", %s %.3g", r->m->tensors[c].name, per[c]);
}

static json_t *grad_norms_json(const Run *r, const double *per)
{
    json_t *o = json_object();
    for (int t = 0; t < r->m->ntensors; t++)
        if (r->trainable[t]) json_object_set_new(o, r->m->tensors[t].name, json_real(per[t]));
    return o;
}

static int run_eval(Run *r, long step, StrBuf *err)
{
    if (!r->neval) return 0;
    if (evaluate(r->evals, r->neval, r->m, (float)r->cfg->logit_scale, r->pool, r->fs, err)) return -1;
    json_decref(r->last_eval);
    r->last_eval = eval_json(r);
    log_line(r, json_pack("{s:s, s:I, s:O}", "type", "eval", "step", (json_int_t)step, "eval", r->last_eval));
    return 0;
}

/* After an evaluation at `step`: track the --stop-when set's best accuracy, and return 1 (with
 * the log line written) if the condition holds. */
static int stop_met(Run *r, long step)
{
    const FtConfig *cfg = r->cfg;
    if (!cfg->stop_when) return 0;
    const FtEvalResult *e = &r->evals[cfg->stop_eval].res;
    if (isnan(r->best_acc) || e->acc > r->best_acc) {
        r->best_acc = e->acc;
        r->best_step = step;
    }
    if (!(e->acc >= cfg->stop_acc)) return 0;
    char sw[128];
    stop_text(cfg, sw, sizeof sw);
    r->stopped_at = step;
    log_line(r, json_pack("{s:s, s:I, s:s, s:O}", "type", "stop", "step", (json_int_t)step, "reason", sw, "eval",
                          r->last_eval));
    return 1;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

FtStatus ft_run(const FtConfig *cfg, const FtHooks *hooks, FtResult *res, StrBuf *err)
{
    memset(res, 0, sizeof *res);
    res->train_loss = NAN;   /* until a step is taken */
    Run run, *r = &run;
    memset(r, 0, sizeof run);
    r->cfg = cfg;
    r->hooks = hooks;
    r->res = res;
    r->stopped_at = -1;
    r->best_acc = NAN;
    int nthreads = hooks && hooks->threads > 0 ? hooks->threads : 1;
    r->pool = bwd_pool_new(nthreads);
    r->fs = xcalloc((size_t)nthreads, sizeof(FwdState));
    for (int i = 0; i < nthreads; i++) fwd_init(&r->fs[i]);
    FtStatus status = FT_ERROR;
    /* before the run creates a thread: the shard threads inherit it (ft_config_parse has
     * refused the setting where the CPU has no such mode) */
    FpmSaved fpm = {0, 0};
    if (cfg->flush_subnormals) fpm_flush_begin(&fpm);
    int resume = hooks && hooks->resume;
    long start = 0;
    json_t *state = NULL;
    DataBatch batch;
    memset(&batch, 0, sizeof batch);
    float *grads = NULL;
    double *gper = NULL, *gprev = NULL;
    char *ckpt_owned = NULL;
    int log_stop = 0;   /* stopped because a --log line was lost */

    /* ---- everything is checked before any work ---- */
    /* the outputs first (common/outfile.h): a folder that is missing or not writable, or a
     * path that is not a regular file, fails here rather than after loading and compiling */
    r->ckpt_path = cfg->checkpoint;
    if (!r->ckpt_path) r->ckpt_path = ckpt_owned = ft_default_checkpoint(cfg->output);
    if (of_check(cfg->output, "-o", err) || of_check(r->ckpt_path, "--checkpoint", err) ||
        (cfg->log && of_check(cfg->log, "--log", err)) ||
        (!resume && cfg->save_init && of_check(cfg->save_init, "--save-init", err))) {
        status = FT_BAD_SETTING;
        goto done;
    }
    if (cfg->log && (of_same_file(cfg->log, cfg->output) || of_same_file(cfg->log, r->ckpt_path) ||
                     of_same_file(cfg->log, cfg->model))) {
        sb_printf(err, "--log %s: the log must differ from the output, the checkpoint and the model", cfg->log);
        status = FT_BAD_SETTING;
        goto done;
    }
    /* not resumed: the file's hash is the parent's, taken from the bytes loaded */
    r->m = resume ? model_load(cfg->model, err) : model_load_hashed(cfg->model, r->parent_sha, err);
    if (!r->m) goto done;
    r->config = json_deep_copy(cfg->json);
    if (resume) {
        if (!(state = state_of(r->m, cfg->model, err))) goto done;
        start = (long)json_integer_value(json_object_get(state, "step"));
        json_t *ps = json_object_get(state, "parent_sha256");
        if (!json_is_string(ps) || strlen(json_string_value(ps)) != 64) {
            sb_printf(err, "%s: metadata '%s': expected parent_sha256", cfg->model, FT_STATE_KEY);
            goto done;
        }
        strcpy(r->parent_sha, json_string_value(ps));
        r->parent_provenance = json_deep_copy(json_object_get(state, "parent_provenance"));
        if (!r->parent_provenance) r->parent_provenance = json_null();
        const char *kb = json_string_value(json_object_get(state, "blas"));   /* absent before 0.1.0's record */
        if (kb) snprintf(r->blas, sizeof r->blas, "%s", kb);
        json_t *cs = json_object_get(state, "config_sources");
        if (json_is_object(cs)) r->sources = json_deep_copy(cs);
        json_t *le = json_object_get(state, "eval");
        if (json_is_object(le) && json_object_size(le)) r->last_eval = json_deep_copy(le);
        json_t *sb = json_object_get(state, "stop_best");
        if (json_is_object(sb)) {
            r->best_acc = json_number_value(json_object_get(sb, "acc"));
            r->best_step = (long)json_integer_value(json_object_get(sb, "step"));
        }
        if (hooks->parent_check) {
            char h[65];
            file_sha(hooks->parent_check, h);
            if (strcmp(h, r->parent_sha)) {
                sb_printf(err, "MODEL %s: its sha256 %s is not the checkpoint's parent %s", hooks->parent_check, h,
                          r->parent_sha);
                status = FT_BAD_SETTING;
                goto done;
            }
        }
        json_t *want = rng_state_json(cfg->seed, start);
        int same_rng = json_equal(want, json_object_get(state, "rng"));
        json_decref(want);
        if (!same_rng) {
            sb_printf(err, "%s: its data-stream state for step %ld is not the one this tracc derives from --seed %llu "
                           "(a checkpoint from another version?); it cannot be resumed bit-identically",
                      cfg->model, start, (unsigned long long)cfg->seed);
            goto done;
        }
        if (start < 0 || start > cfg->opt.steps) {
            sb_printf(err, "%s: step %ld is past --steps %ld", cfg->model, start, cfg->opt.steps);
            goto done;
        }
        json_object_set_new(r->config, "model", json_string(json_string_value(json_object_get(
                                                     json_object_get(state, "config"), "model"))));
    } else {
        r->parent_provenance = json_deep_copy(r->m->provenance);
        if (!r->parent_provenance) r->parent_provenance = json_null();
        if (cfg->sources) r->sources = json_deep_copy(cfg->sources);
    }
    /* a checkpoint given as MODEL (not resumed) is a plain parent: drop its training state;
     * a resumed one keeps its optimizer tensors until optim_load */
    if (!resume) ft_strip_training_state(r->m);
    else model_set_meta(r->m, FT_STATE_KEY, NULL);
    /* this process's BLAS kernel, after those of the run it continues (a job resumed on
     * another CPU rounds differently from there on: the record says so) */
    {
        const char *core = fwd_blas_core(), *last = strrchr(r->blas, '+');
        last = last ? last + 1 : r->blas;
        size_t n = strlen(r->blas);
        if (strcmp(last, core) && n + strlen(core) + 2 < sizeof r->blas)
            snprintf(r->blas + n, sizeof r->blas - n, "%s%s", n ? "+" : "", core);
        snprintf(res->blas, sizeof res->blas, "%s", r->blas);
    }

    DataSpec ds = cfg->data;
    int maxlen = r->m->cfg.n_ctx - 1;
    if (!ds.len_min) ds.len_min = ds.len_max = maxlen;
    json_object_set_new(r->config, "len", json_pack("[i, i]", ds.len_min, ds.len_max));
    r->gen = data_gen_new(&ds, r->m, err);
    if (!r->gen) {
        /* the answer position a preset chose may not fit this model: say who chose it */
        if (!strncmp(err->s, "--at ", 5)) {
            Reader sr = {cfg->json, err, 0, cfg->sources};
            source_note(&sr, "at");
        }
        status = FT_BAD_SETTING;
        goto done;
    }
    r->files = json_array();
    for (int i = 0; i < data_gen_nfiles(r->gen); i++) {
        const char *role, *path, *sha;
        data_gen_file(r->gen, i, &role, &path, &sha);
        json_array_append_new(r->files, json_pack("{s:s, s:s, s:s}", "role", role, "path", path, "sha256", sha));
    }
    r->neval = cfg->neval;
    r->evals = xcalloc((size_t)(cfg->neval ? cfg->neval : 1), sizeof *r->evals);
    for (int i = 0; i < cfg->neval; i++) {
        const FtEval *e = &cfg->evals[i];
        char flag[128];
        snprintf(flag, sizeof flag, "--eval %s:", e->name);
        DataSpec es = ds;
        es.task = e->program;
        es.data = NULL;
        es.spurious = e->spurious;
        es.spurious_rate = e->spurious ? e->rate : 0;
        es.spurious_uniform = 0;   /* C_Te = 0 means no input carries it, whatever the training drew */
        es.nmix = 0;
        es.task_flag = flag;
        r->evals[i].spec = e;
        snprintf(r->evals[i].res.name, sizeof r->evals[i].res.name, "%s", e->name);
        r->evals[i].gen = data_gen_new(&es, r->m, err);
        if (!r->evals[i].gen) {
            status = FT_BAD_SETTING;
            goto done;
        }
        for (int k = 0; k < data_gen_nfiles(r->evals[i].gen); k++) {
            const char *role, *path, *sha;
            data_gen_file(r->evals[i].gen, k, &role, &path, &sha);
            char rl[160];
            snprintf(rl, sizeof rl, "eval %s %s", e->name, role);
            json_array_append_new(r->files, json_pack("{s:s, s:s, s:s}", "role", rl, "path", path, "sha256", sha));
        }
    }
    if (resume) {
        json_t *was = json_object_get(state, "files");
        if (!json_equal(was, r->files)) {
            size_t i;
            json_t *e;
            json_array_foreach(r->files, i, e) {
                json_t *w = json_array_get(was, i);
                if (!json_equal(w, e)) {
                    sb_printf(err, "%s %s has changed since the checkpoint was written (sha256 %s, the checkpoint "
                                   "recorded %s); resuming would not continue the same run",
                              json_string_value(json_object_get(e, "role")), json_string_value(json_object_get(e, "path")),
                              json_string_value(json_object_get(e, "sha256")),
                              w ? json_string_value(json_object_get(w, "sha256")) : "nothing");
                    break;
                }
            }
            if (!err->len) sb_printf(err, "the data files differ from the checkpoint's");
            status = FT_BAD_SETTING;
            goto done;
        }
    }
    r->trainable = xcalloc((size_t)r->m->ntensors + 1, 1);
    if (optim_select(r->m, cfg->train, cfg->ntrain, cfg->freeze, cfg->nfreeze, r->trainable, err)) {
        status = FT_BAD_SETTING;
        goto done;
    }
    json_object_set_new(r->config, "checkpoint", json_string(r->ckpt_path));
    const char *save_init = resume ? NULL : cfg->save_init;   /* a resumed run has no start to save */
    if (save_init && (!strcmp(save_init, cfg->output) || !strcmp(save_init, r->ckpt_path) ||
                      !strcmp(save_init, cfg->model) || (cfg->log && !strcmp(save_init, cfg->log)))) {
        sb_printf(err, "--save-init %s: must differ from the model, -o, --checkpoint and --log files", save_init);
        status = FT_BAD_SETTING;
        goto done;
    }
    if (!strcmp(cfg->output, r->ckpt_path) || !strcmp(cfg->output, cfg->model)) {
        sb_printf(err, "-o %s: the output must differ from the %s", cfg->output,
                  !strcmp(cfg->output, cfg->model) ? (resume ? "checkpoint resumed from" : "model") : "checkpoint");
        status = FT_BAD_SETTING;
        goto done;
    }
    optim_init(&r->opt, &cfg->opt, r->m->num_params);
    if (resume) {
        if (optim_load(&r->opt, r->m, err)) {
            sb_printf(err, " (in %s)", cfg->model);
            goto done;
        }
        r->opt.t = start;
    }
    /* evaluation sets: fixed by (eval_seed, spurious predicate, rate) only, so sets that differ
     * only in their target program share inputs (and one forward pass) */
    for (int i = 0; i < r->neval; i++) {
        if (data_gen_batch(r->evals[i].gen, data_eval_seed(r->evals[i].gen, cfg->eval_seed), 0, cfg->eval_size,
                           &r->evals[i].batch, err))
            goto done;
        r->evals[i].leader = i;
        for (int k = 0; k < i; k++)
            if (r->evals[k].leader == k && same_inputs(&r->evals[k].batch, &r->evals[i].batch)) {
                r->evals[i].leader = k;
                break;
            }
    }
    if (cfg->log) {
        if (resume && trim_log(cfg->log, start, err)) goto done;
        if (!(r->log = of_stream_open(cfg->log, resume, "--log", err))) goto done;
    }

    /* ---- the run ---- */
    r->t0 = now_s();
    if (!resume) {
        Rng nr;
        rng_seed(&nr, data_derive_seed(cfg->seed, 4, 0));
        optim_init_noise(r->m, r->trainable, cfg->init_noise, &nr);
        json_t *head = json_pack("{s:s, s:I, s:s, s:I, s:I}", "type", "start", "step", (json_int_t)0, "parent_sha256",
                                 r->parent_sha, "params", (json_int_t)r->m->num_params, "steps",
                                 (json_int_t)cfg->opt.steps);
        json_object_set_new(head, "config", json_deep_copy(r->config));
        if (r->sources) json_object_set_new(head, "config_sources", json_deep_copy(r->sources));
        log_line(r, head);
        if (run_eval(r, 0, err)) goto done;
        /* the start (after the noise) as a model file: what a --steps 0 run writes as its output */
        if (save_init) {
            json_t *pv = provenance(r, 0, NAN);
            model_set_provenance(r->m, pv);
            json_decref(pv);
            if (model_save(r->m, save_init, err)) goto done;
            log_line(r, json_pack("{s:s, s:I, s:s}", "type", "init_saved", "step", (json_int_t)0, "path", save_init));
        }
        progress(r, 0, NAN, optim_lr(&cfg->opt, 0), NAN, 0, r->neval > 0);
        stop_met(r, 0);
    } else {
        log_line(r, json_pack("{s:s, s:I}", "type", "resume", "step", (json_int_t)start));
    }
    grads = xmalloc(sizeof(float) * (r->m->num_params ? r->m->num_params : 1));
    /* per-tensor gradient norms: this step's, and the last finite step's (named when a run
     * diverges: the tensor whose gradient exploded is where to look) */
    gper = xcalloc((size_t)r->m->ntensors + 1, sizeof(double));
    gprev = xcalloc((size_t)r->m->ntensors + 1, sizeof(double));
    BwdOptions bo = {0, (float)cfg->logit_scale, r->trainable};
    double loss = NAN, gn = NAN, lr = NAN;
    long step = start, last_eval_step = resume ? -1 : 0;
    for (; step < cfg->opt.steps && r->stopped_at < 0; step++) {
        if (of_stream_failed(r->log)) {
            log_stop = 1;
            sb_printf(err, "stopped at step %ld, nothing written; %s", step,
                      res->checkpoint[0] ? "the last good checkpoint is " : "no checkpoint was written");
            if (res->checkpoint[0]) sb_printf(err, "%s (step %ld)", res->checkpoint, res->checkpoint_step);
            goto done;
        }
        if (hooks && hooks->stop && *hooks->stop) {
            if (write_checkpoint(r, step, loss, err)) goto done;
            log_line(r, json_pack("{s:s, s:I}", "type", "interrupted", "step", (json_int_t)step));
            res->steps = step;
            status = FT_INTERRUPTED;
            goto done;
        }
        if (data_gen_batch(r->gen, cfg->seed, (uint64_t)step, cfg->batch, &batch, err)) goto done;
        BwdBatch bb = {batch.B, batch.T, batch.tokens, batch.lens, batch.R, batch.seq, batch.pos, batch.target,
                       batch.target_num, 0};
        if (bwd_pool_step(r->pool, r->m, &bb, &bo, grads, &loss, err)) goto done;
        if (hooks && hooks->test_nan_at == step + 1) loss = NAN;
        gn = optim_grad_norms(r->m, r->trainable, grads, gper);
        lr = optim_lr(&cfg->opt, step);
        const char *what = !isfinite(loss) ? "the loss" : !isfinite(gn) ? "the gradient" : NULL;
        if (!what) {
            optim_step(&r->opt, r->m, r->trainable, grads, gn, lr);
            if (!all_finite(r->m, r->trainable)) what = "a weight";
        }
        if (what) {
            char ck[4200];
            if (res->checkpoint[0]) snprintf(ck, sizeof ck, "the last good checkpoint is %s (step %ld)", res->checkpoint, res->checkpoint_step);
            else snprintf(ck, sizeof ck, "no checkpoint was written (see --checkpoint-every)");
            StrBuf top;
            sb_init(&top);
            /* gprev is step `step`'s, if this process has taken a step */
            if (res->steps_run > 0) grad_top_text(r, gprev, step, &top);
            sb_printf(err, "step %ld: %s is %s (loss %g, gradient norm %g, lr %g)%s; stopped, nothing written; %s",
                      step + 1, what, !isfinite(loss) ? (isnan(loss) ? "nan" : "inf") : "not finite", loss, gn, lr,
                      top.s ? top.s : "", ck);
            sb_free(&top);
            json_t *dv = json_pack("{s:s, s:I, s:s}", "type", "diverged", "step", (json_int_t)(step + 1), "what", what);
            if (res->steps_run > 0) {
                json_object_set_new(dv, "last_finite_step", json_integer(step));
                json_object_set_new(dv, "last_finite_grad_norms", grad_norms_json(r, gprev));
            }
            log_line(r, dv);
            res->steps = step;
            status = FT_DIVERGED;
            goto done;
        }
        long done_steps = step + 1;
        memcpy(gprev, gper, sizeof(double) * (size_t)r->m->ntensors);
        res->steps_run++;
        res->train_loss = loss;
        if (done_steps % cfg->log_every == 0 || done_steps == cfg->opt.steps) {
            int tt = grad_top(r, gper, -1, -1);
            log_line(r, json_pack("{s:s, s:I, s:f, s:f, s:f, s:[s,f], s:f}", "type", "train", "step",
                                  (json_int_t)done_steps, "loss", loss, "lr", lr, "grad_norm", gn, "grad_top",
                                  r->m->tensors[tt].name, gper[tt], "time", now_s() - r->t0));
        }
        int evaluated = 0;
        if ((cfg->eval_every && done_steps % cfg->eval_every == 0) || done_steps == cfg->opt.steps) {
            if (run_eval(r, done_steps, err)) goto done;
            last_eval_step = done_steps;
            evaluated = r->neval > 0;
        }
        progress(r, done_steps, loss, lr, gn, res->steps_run, evaluated);
        if (evaluated && stop_met(r, done_steps)) break;   /* the output is written at this step */
        if (cfg->checkpoint_every && done_steps % cfg->checkpoint_every == 0 && done_steps < cfg->opt.steps)
            if (write_checkpoint(r, done_steps, loss, err)) goto done;
        if (hooks && hooks->test_delay_ms > 0) sleep_ms(hooks->test_delay_ms);
    }
    if (r->stopped_at < 0 && last_eval_step != cfg->opt.steps) {
        if (run_eval(r, cfg->opt.steps, err)) goto done;
        if (r->neval) stop_met(r, cfg->opt.steps);
    }
    long end = r->stopped_at >= 0 ? r->stopped_at : cfg->opt.steps;
    res->steps = end;

    if (of_stream_failed(r->log)) {
        log_stop = 1;
        sb_printf(err, "stopped at step %ld, nothing written", end);
        goto done;
    }

    /* ---- the output: the parent's metadata, the new weights, provenance ---- */
    ft_strip_training_state(r->m);
    json_t *pv = provenance(r, end, res->train_loss);
    model_set_provenance(r->m, pv);
    json_decref(pv);
    if (model_save(r->m, cfg->output, err)) goto done;
    log_line(r, json_pack("{s:s, s:I, s:s}", "type", "done", "step", (json_int_t)end, "output",
                          cfg->output));
    status = FT_OK;
done:
    res->elapsed = r->t0 > 0 ? now_s() - r->t0 : 0;
    res->neval = r->neval;
    res->stopped_at = r->stopped_at;
    res->stop_best_acc = r->best_acc;
    res->stop_best_step = r->best_step;
    for (int i = 0; i < r->neval; i++) {
        res->eval[i] = r->evals[i].res;
    }
    if (r->log) {   /* a lost log line fails the run, whatever else happened */
        StrBuf le;
        sb_init(&le);
        if (of_stream_close(r->log, &le)) {
            StrBuf rest;
            sb_init(&rest);
            sb_puts(&rest, err->s);
            sb_clear(err);
            sb_puts(err, le.s);
            if (status == FT_OK) sb_printf(err, "; the model was written to %s", cfg->output);
            else if (rest.len) sb_printf(err, "%s%s", log_stop ? "; " : "; also: ", rest.s);
            if (status == FT_OK) status = FT_ERROR;
            sb_free(&rest);
        }
        sb_free(&le);
    }
    free(grads);
    free(gper);
    free(gprev);
    data_batch_free(&batch);
    for (int i = 0; i < r->neval; i++) {
        data_gen_free(r->evals[i].gen);
        data_batch_free(&r->evals[i].batch);
    }
    free(r->evals);
    data_gen_free(r->gen);
    optim_free(&r->opt);
    free(r->trainable);
    for (int i = 0; i < nthreads; i++) fwd_free(&r->fs[i]);
    free(r->fs);
    bwd_pool_free(r->pool);
    json_decref(state);
    json_decref(r->config);
    json_decref(r->files);
    json_decref(r->parent_provenance);
    json_decref(r->last_eval);
    json_decref(r->sources);
    if (r->m) model_free(r->m);
    free(ckpt_owned);
    fpm_flush_end(&fpm);
    return status;
}
