/* cmd_plot.c — `tracc plot LOG.jsonl... -o OUT.svg`: training curves (analysis/plot.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/plot.h"
#include "cli/cli.h"
#include "common/outfile.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tracc plot [options] LOG.jsonl [LOG2.jsonl ...] -o OUT.svg\n"
            "\n"
            "Draw the curves of `tracc finetune --log` files: training loss, accuracy and loss of\n"
            "every evaluation set, and the learning rate, against the step (one panel each;\n"
            "several logs are overlaid, each series named by its file). A --stop-when stop is\n"
            "marked with a dashed line.\n"
            "\n"
            "options:\n"
            "  -o, --output FILE  the SVG to write (required)\n"
            "  --title TEXT       the picture's title (default: the log file names)\n"
            "  -h, --help         show this help\n"
            "\n"
            "Exit status: 0 done, 1 error (unreadable or malformed log), 2 usage.\n");
}

static int bad_usage(const char *msg, const char *arg) { return cli_usage_error("plot", msg, arg); }

int cmd_plot(int argc, char **argv)
{
    static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
                                             {"title", required_argument, NULL, 't'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *out = NULL, *title = NULL;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":ho:", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 't': title = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option("plot", c, argv);
        }
    }
    if (optind >= argc) return bad_usage("expected at least one log file%s", "");
    if (!out) return bad_usage("-o OUT.svg is required%s", "");
    if (cli_check_output("plot", "-o", out)) return 1;   /* before any work */
    int nlogs = argc - optind, rc = 1, nread = 0;
    PlotLog *logs = xcalloc((size_t)nlogs, sizeof *logs);
    StrBuf err, t, doc;
    sb_init(&err);
    sb_init(&t);
    sb_init(&doc);
    for (int i = 0; i < nlogs; i++) {
        const char *path = argv[optind + i];
        if (cli_check_input("plot", NULL, path, CLI_WANT_JSONL)) goto done;
        size_t len;
        char *text = read_file(path, &len);
        if (!text) {
            fprintf(stderr, "tracc plot: %s: cannot read: %s\n", path, strerror(errno));
            goto done;
        }
        int bad = plot_read_log(&logs[i], path, text, len, &err);
        free(text);
        nread++;
        if (bad) {
            fprintf(stderr, "tracc plot: %s\n", err.s);
            goto done;
        }
        sb_printf(&t, "%s%s", i ? ", " : "", path);
    }
    plot_svg(logs, nlogs, title ? title : t.s, &doc);
    if (of_write(out, doc.s, doc.len, &err)) {
        fprintf(stderr, "tracc plot: %s\n", err.s);
        goto done;
    }
    long points = 0;
    int sets = 0;
    for (int i = 0; i < nlogs; i++) {
        points += logs[i].loss.n;
        sets += logs[i].neval;
    }
    printf("%s: %d log%s, %ld training points, %d evaluation curve%s\n", out, nlogs, nlogs == 1 ? "" : "s", points,
           sets, sets == 1 ? "" : "s");
    rc = 0;
done:
    for (int i = 0; i < nread; i++) plot_log_free(&logs[i]);
    free(logs);
    sb_free(&err);
    sb_free(&t);
    sb_free(&doc);
    return rc;
}
