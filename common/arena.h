/* arena.h — bump allocator for things that live and die together (an AST, a program).
 * Running out of memory is fatal (see util.h), never a silent NULL. */
#ifndef TRACC_ARENA_H
#define TRACC_ARENA_H

#include <stddef.h>

typedef struct ArenaBlock ArenaBlock;
typedef struct {
    ArenaBlock *head;
} Arena;

void arena_init(Arena *a);
void arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t n);           /* zeroed, 16-byte aligned */
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);

#endif
