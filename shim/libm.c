/* libm.c - nearbyint() for proto/units.c, which the shim links with the rest of proto/
 * but never calls: the Makefile links libqshim.so without -lm (and with --no-undefined).
 * Hidden, so it answers only the shim's own reference and interposes on nothing.
 * Remove it once libqshim.so is linked with -lm or proto/ stops needing libm. Pure. */
double nearbyint(double v);

__attribute__((visibility("hidden"))) double nearbyint(double v)
{
    /* Adding and subtracting 2^52 rounds in the current mode (to nearest by default);
     * values that large are integers already. */
    const double big = 4503599627370496.0;
    if (!(v > -big && v < big))
        return v;
    return v >= 0 ? (v + big) - big : (v - big) + big;
}
