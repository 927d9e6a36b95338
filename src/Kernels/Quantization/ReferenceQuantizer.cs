using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using EdgeSlm.Kernels.Formats;

namespace EdgeSlm.Kernels.Quantization;

/// <summary>
/// ggml's reference quantizers (<c>quantize_row_q4_0_ref</c>, <c>quantize_row_q8_0_ref</c>) and dequantizers,
/// reproduced operation for operation so that model files we write are byte-identical to llama.cpp's.
/// Used for weights; activations go through the faster <see cref="ActivationQuantizer"/>.
/// </summary>
public static class ReferenceQuantizer
{
    public static void Quantize(QuantType type, ReadOnlySpan<float> source, Span<byte> destination)
    {
        switch (type)
        {
            case QuantType.Q4_0:
                QuantizeQ4_0(source, Blocks<BlockQ4_0>(destination, source.Length, BlockQ4_0.Elements, BlockQ4_0.Bytes));
                break;
            case QuantType.Q8_0:
                QuantizeQ8_0(source, Blocks<BlockQ8_0>(destination, source.Length, BlockQ8_0.Elements, BlockQ8_0.Bytes));
                break;
            case QuantType.F16:
                CheckLength(destination.Length, source.Length * 2L);
                for (int i = 0; i < source.Length; i++)
                {
                    BitConverter.TryWriteBytes(destination.Slice(i * 2, 2), (Half)source[i]);
                }
                break;
            case QuantType.F32:
                CheckLength(destination.Length, source.Length * 4L);
                MemoryMarshal.AsBytes(source).CopyTo(destination);
                break;
            default:
                throw new NotSupportedException($"Quantizing to tensor type {type} is not supported.");
        }
    }

    public static void Dequantize(QuantType type, ReadOnlySpan<byte> source, Span<float> destination)
    {
        switch (type)
        {
            case QuantType.Q4_0:
                DequantizeQ4_0(Blocks<BlockQ4_0>(source, destination.Length, BlockQ4_0.Elements, BlockQ4_0.Bytes), destination);
                break;
            case QuantType.Q8_0:
                DequantizeQ8_0(Blocks<BlockQ8_0>(source, destination.Length, BlockQ8_0.Elements, BlockQ8_0.Bytes), destination);
                break;
            case QuantType.F16:
                CheckLength(source.Length, destination.Length * 2L);
                for (int i = 0; i < destination.Length; i++)
                {
                    destination[i] = (float)BitConverter.ToHalf(source.Slice(i * 2, 2));
                }
                break;
            case QuantType.F32:
                CheckLength(source.Length, destination.Length * 4L);
                MemoryMarshal.Cast<byte, float>(source).CopyTo(destination);
                break;
            default:
                // The storage-only types (q5_0, q5_1, q4_k, q5_k, q6_k, bf16); throws for an unknown one.
                Conversion.StorageDequantizer.Dequantize(type, source, destination);
                break;
        }
    }

    /// <summary>Round-to-nearest Q4_0: the scale maps the element of largest magnitude (with its sign) to -8.</summary>
    public static void QuantizeQ4_0(ReadOnlySpan<float> source, Span<BlockQ4_0> destination)
    {
        CheckBlocks(source.Length, destination.Length, BlockQ4_0.Elements);
        for (int b = 0; b < destination.Length; b++)
        {
            ReadOnlySpan<float> x = source.Slice(b * BlockQ4_0.Elements, BlockQ4_0.Elements);
            float absMax = 0f;
            float max = 0f;
            foreach (float v in x)
            {
                if (absMax < MathF.Abs(v))
                {
                    absMax = MathF.Abs(v);
                    max = v;
                }
            }

            float d = max / -8f;
            float inverse = d != 0f ? 1f / d : 0f;
            ref BlockQ4_0 block = ref destination[b];
            block.Scale = (Half)d;
            for (int j = 0; j < 16; j++)
            {
                // ggml: MIN(15, (int8_t)(x * id + 8.5f)); the cast truncates toward zero.
                int low = Math.Min(15, (int)(sbyte)(x[j] * inverse + 8.5f));
                int high = Math.Min(15, (int)(sbyte)(x[16 + j] * inverse + 8.5f));
                block.Quants[j] = (byte)(low | (high << 4));
            }
        }
    }

    /// <summary>Round-to-nearest Q8_0: scale = max|x| / 127, quants rounded half away from zero (C's <c>roundf</c>).</summary>
    public static void QuantizeQ8_0(ReadOnlySpan<float> source, Span<BlockQ8_0> destination)
    {
        CheckBlocks(source.Length, destination.Length, BlockQ8_0.Elements);
        for (int b = 0; b < destination.Length; b++)
        {
            ReadOnlySpan<float> x = source.Slice(b * BlockQ8_0.Elements, BlockQ8_0.Elements);
            float absMax = 0f;
            foreach (float v in x)
            {
                absMax = MathF.Max(absMax, MathF.Abs(v));
            }

            float d = absMax / 127f;
            float inverse = d != 0f ? 1f / d : 0f;
            ref BlockQ8_0 block = ref destination[b];
            block.Scale = (Half)d;
            for (int j = 0; j < BlockQ8_0.Elements; j++)
            {
                block.Quants[j] = (sbyte)MathF.Round(x[j] * inverse, MidpointRounding.AwayFromZero);
            }
        }
    }

    /// <summary>
    /// <see cref="QuantizeQ8_0"/> with the block's 32 products and roundings in <see cref="Vector128"/>s, bit-identical
    /// to it: the same scale and inverse, the same float products, and C's <c>roundf</c> (half away from zero) done
    /// exactly as truncation plus a step away from zero where the dropped fraction is at least one half. Weights
    /// converted at load (<see cref="Conversion.LoadConversion"/>) go through it: half a billion of them for a
    /// Q4_K_M file of Qwen2.5-0.5B's shape.
    /// </summary>
    public static void QuantizeQ8_0Vector128(ReadOnlySpan<float> source, Span<BlockQ8_0> destination)
    {
        CheckBlocks(source.Length, destination.Length, BlockQ8_0.Elements);
        ref float x = ref MemoryMarshal.GetReference(source);
        for (int b = 0; b < destination.Length; b++)
        {
            nuint start = (nuint)(b * BlockQ8_0.Elements);
            Vector128<float> max = Vector128<float>.Zero;
            for (int i = 0; i < 8; i++)
            {
                max = Vector128.Max(max, Vector128.Abs(Vector128.LoadUnsafe(ref x, start + (nuint)(4 * i))));
            }
            float absMax = MathF.Max(MathF.Max(max[0], max[1]), MathF.Max(max[2], max[3]));
            float d = absMax / 127f;
            float inverse = d != 0f ? 1f / d : 0f;
            ref BlockQ8_0 block = ref destination[b];
            block.Scale = (Half)d;
            Span<sbyte> quants = block.Quants;
            for (int i = 0; i < 8; i += 4)
            {
                Vector128<int> q0 = RoundAwayFromZero(Vector128.LoadUnsafe(ref x, start + (nuint)(4 * i)) * inverse);
                Vector128<int> q1 = RoundAwayFromZero(Vector128.LoadUnsafe(ref x, start + (nuint)(4 * i + 4)) * inverse);
                Vector128<int> q2 = RoundAwayFromZero(Vector128.LoadUnsafe(ref x, start + (nuint)(4 * i + 8)) * inverse);
                Vector128<int> q3 = RoundAwayFromZero(Vector128.LoadUnsafe(ref x, start + (nuint)(4 * i + 12)) * inverse);
                Vector128<sbyte> bytes = Vector128.Narrow(Vector128.Narrow(q0, q1), Vector128.Narrow(q2, q3));
                bytes.CopyTo(quants.Slice(4 * i, 16));
            }
        }
    }

    /// <summary>C's <c>roundf</c> per lane: truncate, then one step away from zero if |fraction| ≥ 0.5 (both exact in float).</summary>
    private static Vector128<int> RoundAwayFromZero(Vector128<float> value)
    {
        Vector128<float> whole = Vector128.Truncate(value);
        Vector128<float> up = Vector128.GreaterThanOrEqual(Vector128.Abs(value - whole), Vector128.Create(0.5f));
        Vector128<float> step = Vector128.CopySign(Vector128.Create(1f), value) & up;
        return Vector128.ConvertToInt32(whole + step);
    }

    public static void DequantizeQ4_0(ReadOnlySpan<BlockQ4_0> source, Span<float> destination)
    {
        CheckBlocks(destination.Length, source.Length, BlockQ4_0.Elements);
        for (int b = 0; b < source.Length; b++)
        {
            float d = (float)source[b].Scale;
            Span<float> y = destination.Slice(b * BlockQ4_0.Elements, BlockQ4_0.Elements);
            for (int j = 0; j < 16; j++)
            {
                byte packed = source[b].Quants[j];
                y[j] = ((packed & 0x0F) - 8) * d;
                y[j + 16] = ((packed >> 4) - 8) * d;
            }
        }
    }

    public static void DequantizeQ8_0(ReadOnlySpan<BlockQ8_0> source, Span<float> destination)
    {
        CheckBlocks(destination.Length, source.Length, BlockQ8_0.Elements);
        for (int b = 0; b < source.Length; b++)
        {
            float d = (float)source[b].Scale;
            Span<float> y = destination.Slice(b * BlockQ8_0.Elements, BlockQ8_0.Elements);
            for (int j = 0; j < BlockQ8_0.Elements; j++)
            {
                y[j] = source[b].Quants[j] * d;
            }
        }
    }

    private static Span<TBlock> Blocks<TBlock>(Span<byte> bytes, int elements, int blockElements, int blockBytes)
        where TBlock : struct
    {
        CheckBlockCount(elements, blockElements);
        CheckLength(bytes.Length, (long)elements / blockElements * blockBytes);
        return MemoryMarshal.Cast<byte, TBlock>(bytes[..(elements / blockElements * blockBytes)]);
    }

    private static ReadOnlySpan<TBlock> Blocks<TBlock>(ReadOnlySpan<byte> bytes, int elements, int blockElements, int blockBytes)
        where TBlock : struct
    {
        CheckBlockCount(elements, blockElements);
        CheckLength(bytes.Length, (long)elements / blockElements * blockBytes);
        return MemoryMarshal.Cast<byte, TBlock>(bytes[..(elements / blockElements * blockBytes)]);
    }

    private static void CheckBlockCount(int elements, int blockElements)
    {
        if (elements % blockElements != 0)
        {
            throw new ArgumentException($"The row has {elements} elements; a quantized row needs a multiple of {blockElements}.");
        }
    }

    private static void CheckBlocks(int elements, int blocks, int blockElements)
    {
        if (elements != (long)blocks * blockElements)
        {
            throw new ArgumentException($"{elements} elements do not fill {blocks} blocks of {blockElements}.");
        }
    }

    private static void CheckLength(int actual, long needed)
    {
        if (actual != needed)
        {
            throw new ArgumentException($"The buffer has {actual} bytes; the row needs exactly {needed}.");
        }
    }
}
