/* a compile error whose message echoes bytes that are not UTF-8 (a surrogate, a code point past U+10FFFF) */
#error bad bytes: í €|ô€€|end
int main(void) { return 0; }
