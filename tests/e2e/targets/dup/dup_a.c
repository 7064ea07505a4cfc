/* dup_a.c: one of the two `static int twin(void)` of the dup target. */
volatile int dup_a_sink;

__attribute__((noipa)) static int twin(void) {
  dup_a_sink++;
  return 100;
}

int call_a(void) { return twin(); }
