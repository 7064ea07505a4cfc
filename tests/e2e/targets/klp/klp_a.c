/* klp_app's first `tally` and `twin` (",1" in symbol table order). */
static int tally = 100;

__attribute__((noipa)) static int twin(void) { return tally; }

__attribute__((noipa)) int a_value(void) { return twin(); }

void a_set(int v) { tally = v; }
