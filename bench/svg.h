/*
 * svg.h - a grouped bar chart written as plain SVG, for cellar-bench --svg.
 */
#ifndef BENCH_SVG_H
#define BENCH_SVG_H

struct svg_chart {
	const char *title;
	const char *subtitle;
	/** Groups along the x axis (phases) and the bars in each (engines). */
	int ngroups;
	const char *const *groups;
	int nseries;
	const char *const *series;
	/** values[g * nseries + s]; a value <= 0 draws no bar ("n/a"). */
	const double *values;
	/** Label of the (logarithmic) y axis. */
	const char *unit;
};

/** Write the chart to path; 0 on success, -1 (errno set) on failure. */
int svg_write(const char *path, const struct svg_chart *c);

#endif /* BENCH_SVG_H */
