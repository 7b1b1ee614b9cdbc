/**
 * Bit-for-bit reproducible elementary functions for placement.
 *
 * Every Box must compute the same placement for every chunk. ECMAScript leaves `Math.exp` and `Math.log`
 * "implementation-approximated", so two engines (or two Node versions) may round them differently and a
 * near-tie between two Boxes' scores could then be decided differently on different Boxes. Placement therefore
 * never calls them: the functions below use only `+ - * /`, comparisons, 32-bit integer operations and literal
 * constants, which IEEE-754 double arithmetic (mandated by ECMAScript, with no fused multiply-add) rounds
 * identically everywhere. Ceph's straw2 bucket avoids float logarithms for the same reason (it uses a fixed-point
 * table); we keep doubles and make them deterministic instead.
 *
 * Accuracy: relative error below ~1e-15 over the ranges placement uses, which is far below anything the
 * statistics could notice; what matters is that the result is identical on every Box.
 */

export const LN2 = 0.6931471805599453;
const LN2_HI = 0.6931471803691238; // high bits of ln 2 (exact product with small integers)
const LN2_LO = 1.9082149292705877e-10; // ln 2 - LN2_HI
const SQRT2 = 1.4142135623730951;

/** POW2_NEG[k] = 2^-k for k = 0..1074, built by exact halving. */
const POW2_NEG: Float64Array = (() => {
  const t = new Float64Array(1075);
  let v = 1;
  for (let k = 0; k < t.length; k++) {
    t[k] = v;
    v *= 0.5;
  }
  return t;
})();

/** POW2_POS[k] = 2^k for k = 0..1023, built by exact doubling. */
const POW2_POS: Float64Array = (() => {
  const t = new Float64Array(1024);
  let v = 1;
  for (let k = 0; k < t.length; k++) {
    t[k] = v;
    v *= 2;
  }
  return t;
})();

/** ln(m) for m in [sqrt(1/2), sqrt(2)], by the atanh series ln m = 2 atanh((m-1)/(m+1)). */
function lnReduced(m: number): number {
  const s = (m - 1) / (m + 1);
  const z = s * s;
  // |s| <= 0.1716, z <= 0.02944: terms up to z^9/19 leave a relative error below 1e-17.
  const p =
    1 +
    z *
      (1 / 3 +
        z * (1 / 5 + z * (1 / 7 + z * (1 / 9 + z * (1 / 11 + z * (1 / 13 + z * (1 / 15 + z * (1 / 17 + z / 19))))))));
  return 2 * s * p;
}

/**
 * An exponentially distributed variate from a 53-bit uniform integer given as `hi` (the top 21 bits, as an
 * unsigned value < 2^21) and `lo` (the low 32 bits, unsigned): returns -ln((x + 1) / 2^53) with x = hi*2^32 + lo,
 * which is >= 0 and never infinite.
 */
export function expVariate53(hi: number, lo: number): number {
  const y = hi * 4294967296 + lo + 1; // exact: 1 <= y <= 2^53
  let k: number; // floor(log2 y)
  if (hi > 0 || y >= 4294967296) {
    const yHi = (y * 2.3283064365386963e-10) >>> 0; // floor(y / 2^32), exact
    k = 63 - Math.clz32(yHi);
  } else {
    k = 31 - Math.clz32(y >>> 0);
  }
  let m = y * POW2_NEG[k]!; // in [1, 2), exact
  if (m > SQRT2) {
    m *= 0.5;
    k += 1;
  }
  const e = 53 - k;
  return e * LN2_HI + (e * LN2_LO - lnReduced(m));
}

/** Natural logarithm of a positive, finite double. */
export function detLn(x: number): number {
  if (!(x > 0) || x === Infinity) throw new RangeError(`detLn needs a positive finite number, got ${x}`);
  let k = 0;
  let m = x;
  // Bring m into [1, 2) by exact power-of-two scaling; 64 at a time keeps the loop short for extreme inputs.
  while (m >= 1.8446744073709552e19) {
    m *= POW2_NEG[64]!;
    k += 64;
  }
  while (m < 5.421010862427522e-20) {
    m *= POW2_POS[64]!;
    k -= 64;
  }
  while (m >= 2) {
    m *= 0.5;
    k += 1;
  }
  while (m < 1) {
    m *= 2;
    k -= 1;
  }
  if (m > SQRT2) {
    m *= 0.5;
    k += 1;
  }
  return k * LN2_HI + (k * LN2_LO + lnReduced(m));
}

/** e^x for finite x; underflows to 0 below about -745 and overflows to Infinity above about 709.7. */
export function detExp(x: number): number {
  if (x !== x) return NaN;
  if (x < -745.2) return 0;
  if (x > 709.78) return Infinity;
  // x = n ln2 + r with |r| <= ln2 / 2 (Cody-Waite split keeps r accurate).
  const n = Math.round(x / LN2); // Math.round is exact in ECMAScript
  const r = x - n * LN2_HI - n * LN2_LO;
  // Taylor series of e^r to r^14/14! (Horner, literal coefficients): truncation error below 2e-17 for |r| <= 0.347.
  const sum =
    1 +
    r *
      (1 +
        r *
          (0.5 +
            r *
              (0.16666666666666666 +
                r *
                  (0.041666666666666664 +
                    r *
                      (0.008333333333333333 +
                        r *
                          (0.001388888888888889 +
                            r *
                              (1.984126984126984e-4 +
                                r *
                                  (2.48015873015873e-5 +
                                    r *
                                      (2.7557319223985893e-6 +
                                        r *
                                          (2.755731922398589e-7 +
                                            r *
                                              (2.505210838544172e-8 +
                                                r * (2.08767569878681e-9 + r * (1.6059043836821613e-10 + r * 1.1470745597729725e-11)))))))))))));
  if (n >= 0) {
    if (n > 1023) return sum * POW2_POS[1023]! * POW2_POS[n - 1023]!;
    return sum * POW2_POS[n]!;
  }
  const k = -n;
  if (k > 1022) return sum * POW2_NEG[1022]! * POW2_NEG[k - 1022]!; // enters the subnormal range in two exact-ish steps
  return sum * POW2_NEG[k]!;
}
