/**
 * Draws indexes in proportion to fixed weights in O(1) per draw: Vose's alias method ("A Linear
 * Algorithm For Generating Random Numbers With a Given Distribution", IEEE TSE 1991). Built in
 * O(n); one uniform number picks both the column and the coin.
 */
export class WeightedSampler {
  private readonly threshold: Float64Array;
  private readonly alias: Int32Array;
  private readonly size: number;

  /** `weights` must hold at least one value above 0; none may be negative. */
  constructor(weights: readonly number[]) {
    const size = weights.length;
    this.size = size;
    this.threshold = new Float64Array(size);
    this.alias = new Int32Array(size);
    const total = weights.reduce((sum, weight) => sum + weight, 0);
    const scaled = weights.map((weight) => (weight * size) / total);
    const small: number[] = [];
    const large: number[] = [];
    scaled.forEach((value, index) => (value < 1 ? small : large).push(index));
    while (small.length > 0 && large.length > 0) {
      const less = small.pop()!;
      const more = large.pop()!;
      this.threshold[less] = scaled[less]!;
      this.alias[less] = more;
      scaled[more] = scaled[more]! + scaled[less]! - 1;
      (scaled[more]! < 1 ? small : large).push(more);
    }
    // Whatever is left holds a full column (up to rounding error).
    for (const index of [...small, ...large]) {
      this.threshold[index] = 1;
      this.alias[index] = index;
    }
  }

  /** An index in [0, n) drawn with probability weight / total. */
  sample(random: () => number): number {
    const scaled = random() * this.size;
    const column = Math.floor(scaled);
    return scaled - column < this.threshold[column]! ? column : this.alias[column]!;
  }
}
