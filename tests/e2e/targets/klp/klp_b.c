/* klp_app's second `tally` and `twin` (",2" in symbol table order). */
static int tally = 200;

__attribute__((noipa)) static int twin(void) { return tally; }

__attribute__((noipa)) int b_value(void) { return twin(); }

void b_set(int v) { tally = v; }
