// libhttp-parser 2.9.4 (apt: libhttp-parser-dev). It ships no pkg-config file, so the
// modulemap names the library itself: `link ":libhttp_parser.a"` (the linker's -l:FILE)
// takes the static archive, so nothing needs libhttp-parser2.9 at run time; startup and
// PSS measured the same as with the .so (bench/README.md). Link flags are recorded in the
// objects of every module that imports this one: a build folder made before the change
// keeps linking the .so too until those are rebuilt. Swift passes the callbacks as
// @convention(c) closures and reads the parser's bitfields directly; only the URL field
// table needs an accessor.
#pragma once
#include <http_parser.h>

/// Offset and length of URL field `f` (UF_PATH, ...): `field_data` is an array of
/// anonymous structs, which Swift cannot import.
static inline uint16_t volt_http_url_field_offset(const struct http_parser_url *u, int f) {
    return (f >= 0 && f < UF_MAX) ? u->field_data[f].off : 0;
}
static inline uint16_t volt_http_url_field_length(const struct http_parser_url *u, int f) {
    return (f >= 0 && f < UF_MAX) ? u->field_data[f].len : 0;
}
