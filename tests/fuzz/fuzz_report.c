/* fuzz_report.c — libFuzzer harness: `tracc report` over a sweep directory whose files come
 * from the input. The input is split at lines holding only "----" into plan.json,
 * runs/0001/result.json, runs/0001/log.jsonl and runs/0002/failed.json (missing parts are
 * absent files); the report is loaded and rendered as JSON and Markdown. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "analysis/sweeprep.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root[64];

static void put(const char *rel, const char *p, size_t n)
{
    char path[160];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(p, 1, n, f);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *parts[] = {"plan.json", "runs/0001/result.json", "runs/0001/log.jsonl",
                                  "runs/0002/failed.json"};
    if (!root[0]) {
        snprintf(root, sizeof root, "/tmp/tracc-fuzz-report-%d", (int)getpid());
        char p[160];
        mkdir(root, 0700);
        snprintf(p, sizeof p, "%s/runs", root);
        mkdir(p, 0700);
        snprintf(p, sizeof p, "%s/runs/0001", root);
        mkdir(p, 0700);
        snprintf(p, sizeof p, "%s/runs/0002", root);
        mkdir(p, 0700);
    }
    for (size_t i = 0; i < 4; i++) {
        char path[160];
        snprintf(path, sizeof path, "%s/%s", root, parts[i]);
        unlink(path);
    }
    const char *s = (const char *)data, *end = s + size;
    for (size_t i = 0; i < 4 && s <= end; i++) {
        const char *cut = NULL;
        for (const char *q = s; q + 5 <= end; q++)
            if ((q == s || q[-1] == '\n') && !memcmp(q, "----\n", 5)) { cut = q; break; }
        size_t n = (size_t)((cut ? cut : end) - s);
        put(parts[i], s, n);
        if (!cut) break;
        s = cut + 5;
    }
    StrBuf err;
    sb_init(&err);
    const char *dirs[1] = {root};
    SrepReport *r = srep_load(dirs, 1, NULL, NULL, &err);
    if (r) {
        json_t *j = srep_json(r);
        char *txt = json_dumps(j, JSON_COMPACT);
        free(txt);
        json_decref(j);
        StrBuf md;
        sb_init(&md);
        srep_markdown(r, &md);
        sb_free(&md);
        srep_free(r);
    }
    sb_free(&err);
    return 0;
}
