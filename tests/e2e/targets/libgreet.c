/* libgreet.so: a shared library for patching code outside the main
 * executable. greet() returns "hello v1"; greet_v2.c makes it "hello v2".
 * Used by the greeter target (see greeter.c for the protocol). */
volatile int greet_calls;

__attribute__((noipa)) const char *greet(void) {
  greet_calls++;
  return "hello v1";
}
