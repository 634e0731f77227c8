/* Runtime entry points the Embedded Swift standard library calls but does not define on
 * Linux (the full runtime's Stubs.cpp has them). Linked into the binaries tools/cross-build
 * makes; the SwiftPM build gets them from the full runtime. Leitner never calls setlocale,
 * so the process locale is "C" and plain strtod/strtof parse like the runtime's C-locale ones. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

const char *_swift_stdlib_strtod_clocale(const char *nptr, double *outResult) {
    char *end;
    errno = 0;
    *outResult = strtod(nptr, &end);
    return end;
}

const char *_swift_stdlib_strtof_clocale(const char *nptr, float *outResult) {
    char *end;
    errno = 0;
    *outResult = strtof(nptr, &end);
    return end;
}
