/* output that is not UTF-8: a surrogate (ED A0 80), overlong 3- and 4-byte forms (E0 80 80,
 * F0 80 80 80), code points past U+10FFFF (F7 BF BF BF, F4 90 80 80), a NUL, an escape
 * sequence; then the edge cases that are valid (U+D7FF, U+E000, U+10000, U+10FFFF, e-acute) */
#include <unistd.h>
int main(void) {
    static const char bad[] = "A\xed\xa0\x80" "B\xe0\x80\x80" "C\xf0\x80\x80\x80" "D\xf7\xbf\xbf\xbf"
                              "E\xf4\x90\x80\x80" "F\x00" "G\x1b[31m\n";
    static const char good[] = "\xed\x9f\xbf|\xee\x80\x80|\xf0\x90\x80\x80|\xf4\x8f\xbf\xbf|\xc3\xa9\n";
    if (write(1, bad, sizeof bad - 1) < 0 || write(1, good, sizeof good - 1) < 0) return 1;
    if (write(2, "\xed\xbf\xbf\xc0\xaf", 5) < 0) return 1;
    return 0;
}
