#ifndef WHSYNC_CSQLITE_SHIM_H
#define WHSYNC_CSQLITE_SHIM_H

#include <sqlite3.h>

// SQLITE_TRANSIENT is `((sqlite3_destructor_type)-1)`, a cast macro Swift does not import. Binding
// with it makes SQLite copy the text or blob before the call returns, so a Swift buffer that only
// lives for the duration of the call is safe to pass.
static inline int whsync_sqlite3_bind_text_transient(sqlite3_stmt *statement, int index,
                                                     const char *text, int length) {
  return sqlite3_bind_text(statement, index, text, length, SQLITE_TRANSIENT);
}

static inline int whsync_sqlite3_bind_blob_transient(sqlite3_stmt *statement, int index,
                                                     const void *bytes, int length) {
  return sqlite3_bind_blob(statement, index, bytes, length, SQLITE_TRANSIENT);
}

#endif
