/* outfile.h — every file tracc writes goes through here (docs/reliability.md, "Outputs").
 *
 * An output is a regular file. It is checked before any work (of_check), written whole to a
 * temp file beside it, fsync'ed and renamed into place (of_write), so a reader — or a run that
 * was killed — sees either the old file or the complete new one. Anything else at the path
 * (a folder, a symbolic link, a device such as /dev/null, a FIFO, a socket) is refused:
 * renaming over it would replace it rather than write it, and writing into it would not be
 * atomic. Temp files are named OUT.tracc-tmp.PID; one left by a process that no longer exists
 * (killed during a save) is removed by the next check or write of the same output.
 * Logs, which grow line by line so they can be followed, are streams (OfStream) with the
 * same checks; every write to them is checked and the first failure is kept for the close.
 *
 * Messages name the path the caller gave, never a temp name, and say what is wrong. */
#ifndef TRACC_OUTFILE_H
#define TRACC_OUTFILE_H

#include <stddef.h>

#include "common/util.h"

/* The marker in temp names: OUT.tracc-tmp.PID, in OUT's folder. */
#define OF_TMP_MARK ".tracc-tmp."

/* Check that PATH can be written as an output: its folder exists and is writable, and PATH is
 * absent or a regular file (not a symbolic link). FLAG ("-o", "--svg", ...) starts the message,
 * e.g. "-o missing/x.safetensors: folder missing does not exist"; NULL for none. Also removes
 * stale temp files of PATH (of_clean_stale). Returns 0, or -1 with a message in err. */
int of_check(const char *path, const char *flag, StrBuf *err);

/* 1 if A and B name the same file: the same existing file (device and inode, so any spelling
 * or link), or the same string when one does not exist yet. For "the output would overwrite an
 * input". */
int of_same_file(const char *a, const char *b);

/* Write DATA as the whole content of PATH atomically (temp file in the same folder, fsync,
 * rename, fsync of the folder). A replaced file keeps its permission bits; a new one gets
 * 0666 less the umask. On failure PATH is unchanged and no temp file is left; returns -1 with
 * "PATH: ..." in err. */
int of_write(const char *path, const void *data, size_t len, StrBuf *err);

/* Remove temp files of PATH (OUT.tracc-tmp.PID) whose process no longer exists. Returns how
 * many were removed. */
int of_clean_stale(const char *path);

/* A log file written line by line. */
typedef struct OfStream OfStream;

/* Checked as of_check does, then opened for writing (truncated, or appended to when append),
 * refusing to follow a symbolic link. NULL with "FLAG PATH: ..." in err on failure. */
OfStream *of_stream_open(const char *path, int append, const char *flag, StrBuf *err);

/* Write LINE and a newline, and flush (so the file can be followed). After a failed write
 * nothing more is written (a later line after a lost one would mislead). Returns 0 or -1. */
int of_stream_line(OfStream *s, const char *line);

/* 1 if a write to S has failed (S may be NULL: 0). */
int of_stream_failed(const OfStream *s);

/* Flush, fsync, close and free S (NULL: no-op). Returns 0, or -1 with
 * "FLAG PATH: write failed: REASON; lines are missing" in err when any write failed. */
int of_stream_close(OfStream *s, StrBuf *err);

#endif
