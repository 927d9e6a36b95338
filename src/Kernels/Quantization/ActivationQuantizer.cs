using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using EdgeSlm.Kernels.Formats;

namespace EdgeSlm.Kernels.Quantization;

/// <summary>
/// Quantizes activation rows (f32) to Q8_0 before every matrix multiplication. Unlike the weight quantizer it
/// rounds half to even (what one SIMD rounding instruction does) and multiplies by 127 / max|x| rather than
/// dividing by the scale; every tier here is bit-identical to <see cref="QuantizeReference"/>. Besides the
/// GGUF-compatible blocks it writes each block's scale as a float and the sum of its quants, which the x64
/// kernels use to multiply unsigned nibbles directly.
/// </summary>
/// <remarks>The quants stay in [-127, 127]: the int8 kernels rely on it to keep 16-bit pair sums from overflowing.</remarks>
internal static unsafe class ActivationQuantizer
{
    public delegate void Tier(float* source, int blocks, byte* destination, float* scales, int* sums);

    public static void QuantizeReference(float* source, int blocks, byte* destination, float* scales, int* sums)
    {
        for (int b = 0; b < blocks; b++)
        {
            float* x = source + b * 32;
            float absMax = 0f;
            for (int j = 0; j < 32; j++)
            {
                absMax = MathF.Max(absMax, MathF.Abs(x[j]));
            }

            (float inverse, float scale) = Scales(absMax, destination + b * BlockQ8_0.Bytes);
            sbyte* q = (sbyte*)(destination + b * BlockQ8_0.Bytes + 2);
            int sum = 0;
            for (int j = 0; j < 32; j++)
            {
                q[j] = (sbyte)MathF.Round(x[j] * inverse, MidpointRounding.ToEven);
                sum += q[j];
            }
            scales[b] = scale;
            sums[b] = sum;
        }
    }

    public static void QuantizeVector128(float* source, int blocks, byte* destination, float* scales, int* sums)
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

            (float inverse, float scale) = Scales(absMax, destination + b * BlockQ8_0.Bytes);
            Vector128<float> id = Vector128.Create(inverse);
            Vector128<int> q0 = Quant(x0, id), q1 = Quant(x1, id), q2 = Quant(x2, id), q3 = Quant(x3, id);
            Vector128<int> q4 = Quant(x4, id), q5 = Quant(x5, id), q6 = Quant(x6, id), q7 = Quant(x7, id);
            sbyte* q = (sbyte*)(destination + b * BlockQ8_0.Bytes + 2);
            Vector128.Narrow(Vector128.Narrow(q0, q1), Vector128.Narrow(q2, q3)).Store(q);
            Vector128.Narrow(Vector128.Narrow(q4, q5), Vector128.Narrow(q6, q7)).Store(q + 16);
            scales[b] = scale;
            sums[b] = Vector128.Sum(((q0 + q1) + (q2 + q3)) + ((q4 + q5) + (q6 + q7)));
        }
    }

    public static void QuantizeVector256(float* source, int blocks, byte* destination, float* scales, int* sums)
    {
        Debug.Assert(Vector256.IsHardwareAccelerated);
        for (int b = 0; b < blocks; b++)
        {
            float* x = source + b * 32;
            Vector256<float> x0 = Vector256.Load(x), x1 = Vector256.Load(x + 8), x2 = Vector256.Load(x + 16), x3 = Vector256.Load(x + 24);
            Vector256<float> max256 = Vector256.Max(Vector256.Max(Vector256.Abs(x0), Vector256.Abs(x1)), Vector256.Max(Vector256.Abs(x2), Vector256.Abs(x3)));
            Vector128<float> max = Vector128.Max(max256.GetLower(), max256.GetUpper());
            float absMax = MathF.Max(MathF.Max(max[0], max[1]), MathF.Max(max[2], max[3]));

            (float inverse, float scale) = Scales(absMax, destination + b * BlockQ8_0.Bytes);
            Vector256<float> id = Vector256.Create(inverse);
            Vector256<int> q0 = Vector256.ConvertToInt32(Vector256.Round(x0 * id));
            Vector256<int> q1 = Vector256.ConvertToInt32(Vector256.Round(x1 * id));
            Vector256<int> q2 = Vector256.ConvertToInt32(Vector256.Round(x2 * id));
            Vector256<int> q3 = Vector256.ConvertToInt32(Vector256.Round(x3 * id));
            sbyte* q = (sbyte*)(destination + b * BlockQ8_0.Bytes + 2);
            Vector256.Narrow(Vector256.Narrow(q0, q1), Vector256.Narrow(q2, q3)).Store(q);
            scales[b] = scale;
            sums[b] = Vector256.Sum((q0 + q1) + (q2 + q3));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> Quant(Vector128<float> x, Vector128<float> inverse) =>
        Vector128.ConvertToInt32(Vector128.Round(x * inverse));

    /// <summary>Writes the block's fp16 scale and returns the multiplier for the quants and the scale as the kernels read it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (float Inverse, float Scale) Scales(float absMax, byte* block)
    {
        Half d = (Half)(absMax / 127f);
        *(Half*)block = d;
        return (absMax != 0f ? 127f / absMax : 0f, (float)d);
    }
}
