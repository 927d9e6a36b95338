using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using System.Runtime.Intrinsics;

namespace EdgeSlm.Kernels.Quantization;

/// <summary>
/// An activation block as the kernels read it: Q8_0's 32 quants with the scale already a float and the sum of
/// the quants (the x64 kernels multiply unsigned nibbles and subtract 8·Σq). Scale, sum and quants of a block
/// share one cache line and one pointer, which keeps the 4-token kernels within the x64 registers.
/// </summary>
internal static class ActivationBlock
{
    public const int Bytes = 40;
    public const int ScaleOffset = 0;   // float: the fp16 Q8_0 scale, widened
    public const int SumOffset = 4;     // int: Σ quants
    public const int QuantsOffset = 8;  // 32 × sbyte
}

/// <summary>
/// Quantizes activation rows (f32) to Q8_0 before every matrix multiplication, into <see cref="ActivationBlock"/>s.
/// Unlike the weight quantizer it rounds half to even (what one SIMD rounding instruction does) and multiplies
/// by 127 / max|x| rather than dividing by the scale; every tier here is bit-identical to
/// <see cref="QuantizeReference"/>. The scale is rounded to fp16 as in a GGUF Q8_0 block. A block whose
/// max|x| is 0, or so small (below 127 / <see cref="float.MaxValue"/>) that 127 / max|x| overflows, gets zero
/// quants; its fp16 scale is 0 either way.
/// </summary>
/// <remarks>The quants stay in [-127, 127]: the int8 kernels rely on it to keep 16-bit pair sums from overflowing.
/// Inputs are finite (a NaN gives each tier its own bytes).</remarks>
internal static unsafe class ActivationQuantizer
{
    public delegate void Tier(float* source, int blocks, byte* destination);

    public static void QuantizeReference(float* source, int blocks, byte* destination)
    {
        for (int b = 0; b < blocks; b++)
        {
            float* x = source + b * 32;
            float absMax = 0f;
            for (int j = 0; j < 32; j++)
            {
                absMax = MathF.Max(absMax, MathF.Abs(x[j]));
            }

            byte* block = destination + b * ActivationBlock.Bytes;
            float inverse = Scale(absMax, block);
            sbyte* q = (sbyte*)(block + ActivationBlock.QuantsOffset);
            int sum = 0;
            for (int j = 0; j < 32; j++)
            {
                q[j] = (sbyte)MathF.Round(x[j] * inverse, MidpointRounding.ToEven);
                sum += q[j];
            }
            *(int*)(block + ActivationBlock.SumOffset) = sum;
        }
    }

    /// <summary>
    /// What NEON runs. Four blocks at a time, so that their scales (two divisions and the fp16 rounding) are
    /// computed as one vector (<see cref="RoundToHalf(Vector128{float})"/>) rather than in scalar code per block.
    /// </summary>
    public static void QuantizeVector128(float* source, int blocks, byte* destination)
    {
        for (int first = 0; first < blocks; first += 4)
        {
            int count = Math.Min(4, blocks - first);
            float* x = source + first * 32;
            Vector128<float> absMax = Vector128.Create(
                AbsMax(x), count > 1 ? AbsMax(x + 32) : 0f, count > 2 ? AbsMax(x + 64) : 0f, count > 3 ? AbsMax(x + 96) : 0f);
            Vector128<float> scales = RoundToHalf(absMax / Vector128.Create(127f));
            Vector128<float> inverses = Vector128.Create(127f) / absMax;
            inverses = Vector128.ConditionalSelect(Vector128.Equals(inverses, Vector128.Create(float.PositiveInfinity)), Vector128<float>.Zero, inverses);
            for (int i = 0; i < count; i++, x += 32)
            {
                byte* block = destination + (first + i) * ActivationBlock.Bytes;
                *(float*)(block + ActivationBlock.ScaleOffset) = scales.GetElement(i);
                Vector128<float> id = Vector128.Create(inverses.GetElement(i));
                Vector128<int> q0 = Quant(Vector128.Load(x), id), q1 = Quant(Vector128.Load(x + 4), id);
                Vector128<int> q2 = Quant(Vector128.Load(x + 8), id), q3 = Quant(Vector128.Load(x + 12), id);
                Vector128<int> q4 = Quant(Vector128.Load(x + 16), id), q5 = Quant(Vector128.Load(x + 20), id);
                Vector128<int> q6 = Quant(Vector128.Load(x + 24), id), q7 = Quant(Vector128.Load(x + 28), id);
                sbyte* q = (sbyte*)(block + ActivationBlock.QuantsOffset);
                Vector128.Narrow(Vector128.Narrow(q0, q1), Vector128.Narrow(q2, q3)).Store(q);
                Vector128.Narrow(Vector128.Narrow(q4, q5), Vector128.Narrow(q6, q7)).Store(q + 16);
                *(int*)(block + ActivationBlock.SumOffset) = Vector128.Sum(((q0 + q1) + (q2 + q3)) + ((q4 + q5) + (q6 + q7)));
            }
        }
    }

    /// <summary>max |x| over a block of 32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float AbsMax(float* x)
    {
        Vector128<float> max = Vector128.Max(
            Vector128.Max(Vector128.Max(Vector128.Abs(Vector128.Load(x)), Vector128.Abs(Vector128.Load(x + 4))),
                Vector128.Max(Vector128.Abs(Vector128.Load(x + 8)), Vector128.Abs(Vector128.Load(x + 12)))),
            Vector128.Max(Vector128.Max(Vector128.Abs(Vector128.Load(x + 16)), Vector128.Abs(Vector128.Load(x + 20))),
                Vector128.Max(Vector128.Abs(Vector128.Load(x + 24)), Vector128.Abs(Vector128.Load(x + 28)))));
        return MathF.Max(MathF.Max(max[0], max[1]), MathF.Max(max[2], max[3]));
    }

    /// <summary>AVX2: as <see cref="QuantizeVector128"/>, eight blocks' scales per vector.</summary>
    public static void QuantizeVector256(float* source, int blocks, byte* destination)
    {
        Debug.Assert(Vector256.IsHardwareAccelerated);
        for (int first = 0; first < blocks; first += 8)
        {
            int count = Math.Min(8, blocks - first);
            float* x = source + first * 32;
            Vector256<float> absMax = Vector256.Create(
                Vector128.Create(AbsMax(x), count > 1 ? AbsMax(x + 32) : 0f, count > 2 ? AbsMax(x + 64) : 0f, count > 3 ? AbsMax(x + 96) : 0f),
                Vector128.Create(count > 4 ? AbsMax(x + 128) : 0f, count > 5 ? AbsMax(x + 160) : 0f, count > 6 ? AbsMax(x + 192) : 0f, count > 7 ? AbsMax(x + 224) : 0f));
            Vector256<float> scales = Vector256.Create(RoundToHalf(absMax.GetLower() / Vector128.Create(127f)), RoundToHalf(absMax.GetUpper() / Vector128.Create(127f)));
            Vector256<float> inverses = Vector256.Create(127f) / absMax;
            inverses = Vector256.ConditionalSelect(Vector256.Equals(inverses, Vector256.Create(float.PositiveInfinity)), Vector256<float>.Zero, inverses);
            for (int i = 0; i < count; i++, x += 32)
            {
                byte* block = destination + (first + i) * ActivationBlock.Bytes;
                *(float*)(block + ActivationBlock.ScaleOffset) = scales.GetElement(i);
                Vector256<float> id = Vector256.Create(inverses.GetElement(i));
                Vector256<int> q0 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(x) * id));
                Vector256<int> q1 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(x + 8) * id));
                Vector256<int> q2 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(x + 16) * id));
                Vector256<int> q3 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(x + 24) * id));
                sbyte* q = (sbyte*)(block + ActivationBlock.QuantsOffset);
                Vector256.Narrow(Vector256.Narrow(q0, q1), Vector256.Narrow(q2, q3)).Store(q);
                *(int*)(block + ActivationBlock.SumOffset) = Vector256.Sum((q0 + q1) + (q2 + q3));
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> Quant(Vector128<float> x, Vector128<float> inverse) =>
        Vector128.ConvertToInt32(Vector128.Round(x * inverse));

    /// <summary>Writes the block's scale (rounded to fp16, as Q8_0 stores it) and returns the multiplier for the quants.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Scale(float absMax, byte* block)
    {
        *(float*)(block + ActivationBlock.ScaleOffset) = (float)(Half)(absMax / 127f);
        float inverse = 127f / absMax;
        return float.IsPositiveInfinity(inverse) ? 0f : inverse;
    }

    /// <summary>
    /// 16 blocks at a time, so that their maxima, scales, multipliers and sums are vectors of 16 lanes: the
    /// per-block horizontal max and sum become one transposing reduction per 16 blocks (<see cref="AcrossLanes16"/>),
    /// and the two divisions and the fp16 rounding are done once per 16 blocks (<see cref="RoundToHalf(Vector512{float})"/>).
    /// 6.6 ns per block on Zen 4 against 16 for the one-block-at-a-time 256-bit tier this path used before.
    /// </summary>
    [SkipLocalsInit] // the stack buffers are written before they are read
    public static void QuantizeAvx512(float* source, int blocks, byte* destination)
    {
        Debug.Assert(Avx512F.IsSupported);
        Vector512<float>* partial = stackalloc Vector512<float>[16];
        float* inverses = stackalloc float[16];
        float* scales = stackalloc float[16];
        int* sums = stackalloc int[16];
        for (int first = 0; first < blocks; first += 16)
        {
            int count = Math.Min(16, blocks - first);
            float* x = source + first * 32;
            byte* output = destination + first * ActivationBlock.Bytes;
            for (int i = 0; i < 16; i++)
            {
                partial[i] = i < count
                    ? Vector512.MaxNative(Vector512.Abs(Vector512.Load(x + i * 32)), Vector512.Abs(Vector512.Load(x + i * 32 + 16)))
                    : Vector512<float>.Zero;
            }
            // MaxNative (VMAXPS) equals Max here: the lanes are |x|, never -0, and inputs are finite.
            Vector512<float> absMax = AcrossLanes16<MaxOperator>(partial);
            RoundToHalf(absMax / 127f).Store(scales);
            Vector512<float> inverse = Vector512.Create(127f) / absMax;
            Vector512.ConditionalSelect(Vector512.Equals(inverse, Vector512.Create(float.PositiveInfinity)), Vector512<float>.Zero, inverse).Store(inverses);

            for (int i = 0; i < 16; i++)
            {
                if (i >= count)
                {
                    partial[i] = Vector512<float>.Zero;
                    continue;
                }
                Vector512<float> id = Vector512.Create(inverses[i]);
                // Rounds half to even by the instruction's own rounding mode, as Round then convert would.
                Vector512<int> q0 = Avx512F.ConvertToVector512Int32(Vector512.Load(x + i * 32) * id, FloatRoundingMode.ToEven);
                Vector512<int> q1 = Avx512F.ConvertToVector512Int32(Vector512.Load(x + i * 32 + 16) * id, FloatRoundingMode.ToEven);
                sbyte* q = (sbyte*)(output + i * ActivationBlock.Bytes + ActivationBlock.QuantsOffset);
                Avx512F.ConvertToVector128SByte(q0).Store(q);
                Avx512F.ConvertToVector128SByte(q1).Store(q + 16);
                partial[i] = (q0 + q1).AsSingle();
            }
            AcrossLanes16<AddInt32Operator>(partial).AsInt32().Store(sums);

            for (int i = 0; i < count; i++)
            {
                byte* block = output + i * ActivationBlock.Bytes;
                *(float*)(block + ActivationBlock.ScaleOffset) = scales[i];
                *(int*)(block + ActivationBlock.SumOffset) = sums[i];
            }
        }
    }

    private interface ILaneOperator
    {
        static abstract Vector512<float> Invoke(Vector512<float> a, Vector512<float> b);
    }

    private readonly struct MaxOperator : ILaneOperator
    {
        public static Vector512<float> Invoke(Vector512<float> a, Vector512<float> b) => Vector512.MaxNative(a, b);
    }

    private readonly struct AddInt32Operator : ILaneOperator
    {
        public static Vector512<float> Invoke(Vector512<float> a, Vector512<float> b) => (a.AsInt32() + b.AsInt32()).AsSingle();
    }

    /// <summary>
    /// Reduces each of 16 vectors over its 16 lanes: lane i of the result is op over the lanes of vectors[i].
    /// Four steps halve the lanes per vector and double the vectors per register (256-bit halves, 128-bit
    /// quarters, 64-bit pairs, single lanes), 15 operations and 30 shuffles in all. Overwrites the vectors.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> AcrossLanes16<TOperator>(Vector512<float>* v) where TOperator : ILaneOperator
    {
        for (int i = 0; i < 8; i++)
        {
            // [v2i lanes 0-7 | v2i+1 lanes 0-7] op [v2i lanes 8-15 | v2i+1 lanes 8-15]
            v[i] = TOperator.Invoke(Avx512F.Shuffle4x128(v[2 * i], v[2 * i + 1], 0x44), Avx512F.Shuffle4x128(v[2 * i], v[2 * i + 1], 0xEE));
        }
        for (int i = 0; i < 4; i++)
        {
            // 128-bit quarter c of v[i] now belongs to vector 4i + c.
            v[i] = TOperator.Invoke(Avx512F.Shuffle4x128(v[2 * i], v[2 * i + 1], 0x88), Avx512F.Shuffle4x128(v[2 * i], v[2 * i + 1], 0xDD));
        }
        for (int i = 0; i < 2; i++)
        {
            // Quarter c: 2 lanes of vector 8i + c, 2 of vector 8i + 4 + c.
            v[i] = TOperator.Invoke(
                Avx512F.UnpackLow(v[2 * i].AsDouble(), v[2 * i + 1].AsDouble()).AsSingle(),
                Avx512F.UnpackHigh(v[2 * i].AsDouble(), v[2 * i + 1].AsDouble()).AsSingle());
        }
        // Lane 4c + k: vector 4k + c; one permutation puts lane i on vector i.
        Vector512<float> reduced = TOperator.Invoke(Avx512F.Shuffle(v[0], v[1], 0x88), Avx512F.Shuffle(v[0], v[1], 0xDD));
        return Avx512F.PermuteVar16x32(reduced, Vector512.Create(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
    }

    /// <summary>
    /// (float)(Half)x for finite x ≥ 0, on vectors (.NET has no vector fp16 conversion): rounds the significand to
    /// 11 bits, half to even; below fp16's smallest normal 2^-14 to a multiple of 2^-24 (adding and subtracting
    /// 0.5, whose ulp is 2^-24); above 65504, the largest fp16, to infinity.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> RoundToHalf(Vector128<float> x)
    {
        Vector128<uint> bits = x.AsUInt32();
        Vector128<float> normal = ((bits + Vector128.Create(0x0FFFu) + ((bits >> 13) & Vector128<uint>.One)) & Vector128.Create(0xFFFFE000u)).AsSingle();
        Vector128<float> subnormal = (x + Vector128.Create(0.5f)) - Vector128.Create(0.5f);
        Vector128<float> rounded = Vector128.ConditionalSelect(Vector128.LessThan(x, Vector128.Create(1f / 16384)), subnormal, normal);
        return Vector128.ConditionalSelect(Vector128.GreaterThan(rounded, Vector128.Create(65504f)), Vector128.Create(float.PositiveInfinity), rounded);
    }

    /// <inheritdoc cref="RoundToHalf(Vector128{float})"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> RoundToHalf(Vector512<float> x)
    {
        Vector512<uint> bits = x.AsUInt32();
        Vector512<float> normal = ((bits + Vector512.Create(0x0FFFu) + ((bits >> 13) & Vector512<uint>.One)) & Vector512.Create(0xFFFFE000u)).AsSingle();
        Vector512<float> subnormal = (x + Vector512.Create(0.5f)) - Vector512.Create(0.5f);
        Vector512<float> rounded = Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512.Create(1f / 16384)), subnormal, normal);
        return Vector512.ConditionalSelect(Vector512.GreaterThan(rounded, Vector512.Create(65504f)), Vector512.Create(float.PositiveInfinity), rounded);
    }
}
