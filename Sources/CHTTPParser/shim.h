// libhttp-parser 2.9.4 (apt: libhttp-parser-dev). It ships no pkg-config file, so the
// modulemap links it by name. Swift passes the callbacks as @convention(c) closures and
// reads the parser's bitfields directly; only the URL field table needs an accessor.
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
