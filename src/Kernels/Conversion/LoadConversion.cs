using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;

namespace EdgeSlm.Kernels.Conversion;

/// <summary>
/// Converts rows of a storage-only type into the native type its traits name (<see cref="QuantTypeTraits.LoadAs"/>):
/// q5_0 to q8_0 exactly (the same scale, q − 16 fits a signed byte), q5_1 / q4_k / q5_k / q6_k to q8_0 through
/// floats and ggml's reference q8_0 rounding, bf16 to f32 exactly. A row that dequantizes to a NaN or an infinity,
/// or whose q8_0 scale would not fit an fp16, is refused: the kernels assume finite scales.
/// </summary>
public static class LoadConversion
{
    /// <summary>Bytes a row of <paramref name="columns"/> elements of <paramref name="type"/> takes once converted.</summary>
    public static long ConvertedRowBytes(QuantType type, long columns)
    {
        QuantTypeTraits source = QuantTypeTraits.Of(type);
        source.RowBytes(columns); // throws for a partial block
        return QuantTypeTraits.Of(source.LoadAs).RowBytes(columns);
    }

    /// <summary>
    /// Converts one row. <paramref name="scratch"/> holds at least the row's element count of floats.
    /// Returns false (and leaves <paramref name="destination"/> partly written) when the row has non-finite values.
    /// </summary>
    public static bool TryConvertRow(QuantType type, ReadOnlySpan<byte> source, Span<byte> destination, Span<float> scratch)
    {
        QuantTypeTraits traits = QuantTypeTraits.Of(type);
        if (traits.IsNative)
        {
            throw new ArgumentException($"{traits.Name} is multiplied as it is; there is nothing to convert.", nameof(type));
        }
        int columns = checked((int)(source.Length / traits.BlockBytes * traits.BlockElements));
        if (traits.RowBytes(columns) != source.Length || destination.Length != QuantTypeTraits.Of(traits.LoadAs).RowBytes(columns))
        {
            throw new ArgumentException($"A {traits.Name} row of {source.Length} bytes converts to {QuantTypeTraits.Of(traits.LoadAs).RowBytes(columns)} bytes, not {destination.Length}.");
        }
        if (type == QuantType.Q5_0)
        {
            return TryQ5_0ToQ8_0(MemoryMarshal.Cast<byte, BlockQ5_0>(source), MemoryMarshal.Cast<byte, BlockQ8_0>(destination));
        }
        Span<float> values = traits.LoadAs == QuantType.F32 ? MemoryMarshal.Cast<byte, float>(destination) : scratch[..columns];
        StorageDequantizer.Dequantize(type, source, values);
        foreach (float v in values)
        {
            if (!float.IsFinite(v))
            {
                return false;
            }
        }
        if (traits.LoadAs == QuantType.Q8_0)
        {
            Span<BlockQ8_0> blocks = MemoryMarshal.Cast<byte, BlockQ8_0>(destination);
            if (Vector128.IsHardwareAccelerated)
            {
                ReferenceQuantizer.QuantizeQ8_0Vector128(values, blocks);
            }
            else
            {
                ReferenceQuantizer.QuantizeQ8_0(values, blocks);
            }
            foreach (ref readonly BlockQ8_0 block in blocks)
            {
                if (!Half.IsFinite(block.Scale))
                {
                    return false;
                }
            }
        }
        return true;
    }

    /// <summary>q5_0's value (q − 16)·d is q8_0's value with the same d and the quant q − 16 in −16..15: no rounding.</summary>
    private static bool TryQ5_0ToQ8_0(ReadOnlySpan<BlockQ5_0> source, Span<BlockQ8_0> destination)
    {
        for (int b = 0; b < source.Length; b++)
        {
            ref readonly BlockQ5_0 from = ref source[b];
            if (!Half.IsFinite(from.Scale))
            {
                return false;
            }
            ref BlockQ8_0 to = ref destination[b];
            to.Scale = from.Scale;
            uint high = from.HighBits;
            for (int j = 0; j < 16; j++)
            {
                byte packed = from.Quants[j];
                to.Quants[j] = (sbyte)(((packed & 0x0F) | (int)((high >> j) & 1) << 4) - 16);
                to.Quants[j + 16] = (sbyte)(((packed >> 4) | (int)((high >> (j + 16)) & 1) << 4) - 16);
            }
        }
        return true;
    }
}
