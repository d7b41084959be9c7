/* The floating-point modes plans run in. */
#ifndef TD_FPMODE_H
#define TD_FPMODE_H

/* Sets flush-to-zero and denormals-are-zero on the calling thread and, when
 * num_threads > 0, on every thread of an OpenMP team of that size (libgomp
 * keeps those threads for later regions, and threads it starts later copy
 * the calling thread's modes). The modes stay set. A no-op where the
 * processor has no such modes. */
void td_flush_denormals(int num_threads);

#endif
