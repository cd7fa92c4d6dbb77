/*
 * svg.c - a grouped bar chart as hand-written SVG (no library).
 *
 * The y axis is logarithmic: the phases differ by orders of magnitude (a
 * reopen is one operation, a get phase millions), and on a log axis equal
 * ratios between engines look equal in every group.
 */
#include <math.h>
#include <stdio.h>

#include "svg.h"

#define PLOT_H 360.0
#define TOP 70.0
#define LEFT 70.0
#define BAR_W 20.0
#define GROUP_GAP 28.0

static const char *const palette[] = {
	"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
	"#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
};

static void fmt_si(char *buf, size_t cap, double v)
{
	if (v >= 1e9)
		snprintf(buf, cap, "%.3gG", v / 1e9);
	else if (v >= 1e6)
		snprintf(buf, cap, "%.3gM", v / 1e6);
	else if (v >= 1e3)
		snprintf(buf, cap, "%.3gk", v / 1e3);
	else
		snprintf(buf, cap, "%.3g", v);
}

/* Text for SVG: escape the five XML specials. */
static void put_text(FILE *f, const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&apos;", f); break;
		default: fputc(*s, f);
		}
	}
}

int svg_write(const char *path, const struct svg_chart *c)
{
	double lo = INFINITY, hi = 0, group_w, width, height, y0;
	int g, s, d, dlo, dhi;
	char label[32];
	FILE *f;

	for (g = 0; g < c->ngroups * c->nseries; g++) {
		if (c->values[g] > 0) {
			lo = fmin(lo, c->values[g]);
			hi = fmax(hi, c->values[g]);
		}
	}
	if (hi <= 0)
		lo = hi = 1;
	dlo = (int)floor(log10(lo));
	dhi = (int)ceil(log10(hi));
	if (dhi <= dlo)
		dhi = dlo + 1;

	group_w = c->nseries * BAR_W + GROUP_GAP;
	width = LEFT + c->ngroups * group_w + 20;
	if (width < 480)
		width = 480;
	height = TOP + PLOT_H + 60;
	y0 = TOP + PLOT_H; /* the x axis */

	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	           "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
	           "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
	           "font-family=\"sans-serif\" font-size=\"11\">\n",
	        width, height, width, height);
	fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
	fprintf(f, "<text x=\"%.0f\" y=\"20\" font-size=\"15\" "
	           "font-weight=\"bold\">", LEFT);
	put_text(f, c->title);
	fprintf(f, "</text>\n<text x=\"%.0f\" y=\"36\" fill=\"#555\">", LEFT);
	put_text(f, c->subtitle);
	fprintf(f, "</text>\n");

	/* Legend. */
	for (s = 0; s < c->nseries; s++) {
		double x = LEFT + s * 110.0;
		fprintf(f, "<rect x=\"%.1f\" y=\"46\" width=\"12\" height=\"12\" "
		           "fill=\"%s\"/><text x=\"%.1f\" y=\"56\">",
		        x, palette[s % 8], x + 16);
		put_text(f, c->series[s]);
		fprintf(f, "</text>\n");
	}

	/* Decade grid lines and y labels. */
	for (d = dlo; d <= dhi; d++) {
		double y = y0 - PLOT_H * (d - dlo) / (dhi - dlo);
		fmt_si(label, sizeof label, pow(10, d));
		fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" "
		           "stroke=\"#ddd\"/>\n<text x=\"%.0f\" y=\"%.1f\" "
		           "text-anchor=\"end\">%s</text>\n",
		        LEFT, y, width - 10, y, LEFT - 6, y + 4, label);
	}
	fprintf(f, "<text transform=\"translate(16 %.0f) rotate(-90)\" "
	           "text-anchor=\"middle\">", TOP + PLOT_H / 2);
	put_text(f, c->unit);
	fprintf(f, " (log scale)</text>\n");
	fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" "
	           "stroke=\"black\"/>\n", LEFT, TOP, LEFT, y0);
	fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" "
	           "stroke=\"black\"/>\n", LEFT, y0, width - 10, y0);

	/* Bars. */
	for (g = 0; g < c->ngroups; g++) {
		double gx = LEFT + GROUP_GAP / 2 + g * group_w;
		for (s = 0; s < c->nseries; s++) {
			double v = c->values[g * c->nseries + s];
			double x = gx + s * BAR_W, y, h;
			if (v <= 0) {
				fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" "
				           "font-size=\"9\" text-anchor=\"middle\" "
				           "fill=\"#999\">n/a</text>\n",
				        x + BAR_W / 2, y0 - 4);
				continue;
			}
			h = PLOT_H * (log10(v) - dlo) / (dhi - dlo);
			if (h < 1)
				h = 1;
			y = y0 - h;
			fmt_si(label, sizeof label, v);
			fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
			           "height=\"%.1f\" fill=\"%s\"><title>",
			        x + 1, y, BAR_W - 2, h, palette[s % 8]);
			put_text(f, c->series[s]);
			fprintf(f, ", %s: %.1f ", c->groups[g], v);
			put_text(f, c->unit);
			fprintf(f, "</title></rect>\n");
			fprintf(f, "<text transform=\"translate(%.1f %.1f) "
			           "rotate(-90)\" font-size=\"9\">%s</text>\n",
			        x + BAR_W / 2 + 3, y - 3, label);
		}
		fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">",
		        gx + c->nseries * BAR_W / 2, y0 + 18);
		put_text(f, c->groups[g]);
		fprintf(f, "</text>\n");
	}
	fprintf(f, "</svg>\n");
	if (ferror(f)) {
		fclose(f);
		return -1;
	}
	return fclose(f) == 0 ? 0 : -1;
}
