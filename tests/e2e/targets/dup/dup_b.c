/* dup_b.c: one of the two `static int twin(void)` of the dup target. */
volatile int dup_b_sink;

__attribute__((noipa)) static int twin(void) {
  dup_b_sink++;
  return 200;
}

int call_b(void) { return twin(); }
