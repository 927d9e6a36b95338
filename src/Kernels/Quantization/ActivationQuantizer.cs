using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using EdgeSlm.Kernels.Formats;

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
/// <see cref="QuantizeReference"/>. The scale is rounded to fp16 as in a GGUF Q8_0 block.
/// </summary>
/// <remarks>The quants stay in [-127, 127]: the int8 kernels rely on it to keep 16-bit pair sums from overflowing.</remarks>
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

    public static void QuantizeVector128(float* source, int blocks, byte* destination)
    {
        for (int b = 0; b < blocks; b++)
        {
            float* x = source + b * 32;
            Vector128<float> x0 = Vector128.Load(x), x1 = Vector128.Load(x + 4), x2 = Vector128.Load(x + 8), x3 = Vector128.Load(x + 12);
            Vector128<float> x4 = Vector128.Load(x + 16), x5 = Vector128.Load(x + 20), x6 = Vector128.Load(x + 24), x7 = Vector128.Load(x + 28);
            Vector128<float> max = Vector128.Max(
                Vector128.Max(Vector128.Max(Vector128.Abs(x0), Vector128.Abs(x1)), Vector128.Max(Vector128.Abs(x2), Vector128.Abs(x3))),
                Vector128.Max(Vector128.Max(Vector128.Abs(x4), Vector128.Abs(x5)), Vector128.Max(Vector128.Abs(x6), Vector128.Abs(x7))));
            float absMax = MathF.Max(MathF.Max(max[0], max[1]), MathF.Max(max[2], max[3]));

            byte* block = destination + b * ActivationBlock.Bytes;
            Vector128<float> id = Vector128.Create(Scale(absMax, block));
            Vector128<int> q0 = Quant(x0, id), q1 = Quant(x1, id), q2 = Quant(x2, id), q3 = Quant(x3, id);
            Vector128<int> q4 = Quant(x4, id), q5 = Quant(x5, id), q6 = Quant(x6, id), q7 = Quant(x7, id);
            sbyte* q = (sbyte*)(block + ActivationBlock.QuantsOffset);
            Vector128.Narrow(Vector128.Narrow(q0, q1), Vector128.Narrow(q2, q3)).Store(q);
            Vector128.Narrow(Vector128.Narrow(q4, q5), Vector128.Narrow(q6, q7)).Store(q + 16);
            *(int*)(block + ActivationBlock.SumOffset) = Vector128.Sum(((q0 + q1) + (q2 + q3)) + ((q4 + q5) + (q6 + q7)));
        }
    }

    public static void QuantizeVector256(float* source, int blocks, byte* destination)
    {
        Debug.Assert(Vector256.IsHardwareAccelerated);
        for (int b = 0; b < blocks; b++)
        {
            float* x = source + b * 32;
            Vector256<float> x0 = Vector256.Load(x), x1 = Vector256.Load(x + 8), x2 = Vector256.Load(x + 16), x3 = Vector256.Load(x + 24);
            Vector256<float> max256 = Vector256.Max(Vector256.Max(Vector256.Abs(x0), Vector256.Abs(x1)), Vector256.Max(Vector256.Abs(x2), Vector256.Abs(x3)));
            Vector128<float> max = Vector128.Max(max256.GetLower(), max256.GetUpper());
            float absMax = MathF.Max(MathF.Max(max[0], max[1]), MathF.Max(max[2], max[3]));

            byte* block = destination + b * ActivationBlock.Bytes;
            Vector256<float> id = Vector256.Create(Scale(absMax, block));
            Vector256<int> q0 = Vector256.ConvertToInt32(Vector256.Round(x0 * id));
            Vector256<int> q1 = Vector256.ConvertToInt32(Vector256.Round(x1 * id));
            Vector256<int> q2 = Vector256.ConvertToInt32(Vector256.Round(x2 * id));
            Vector256<int> q3 = Vector256.ConvertToInt32(Vector256.Round(x3 * id));
            sbyte* q = (sbyte*)(block + ActivationBlock.QuantsOffset);
            Vector256.Narrow(Vector256.Narrow(q0, q1), Vector256.Narrow(q2, q3)).Store(q);
            *(int*)(block + ActivationBlock.SumOffset) = Vector256.Sum((q0 + q1) + (q2 + q3));
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
        return absMax != 0f ? 127f / absMax : 0f;
    }
}
