using System.Runtime.InteropServices;
using EdgeSlm.Kernels.Formats;

namespace EdgeSlm.Kernels.Conversion;

/// <summary>
/// Reference dequantizers for the storage-only types (q5_0, q5_1, q4_k, q5_k, q6_k, bf16): ggml's
/// <c>dequantize_row_*</c> in ggml-quants.c, operation for operation, so a converted weight is the float llama.cpp
/// computes for it. They live in Conversion, not Quantization, because EdgeSlm only ever reads these types, to
/// convert them at load (<see cref="LoadConversion"/>); a type moves out of here when it gets kernels of its own.
/// </summary>
public static class StorageDequantizer
{
    public static void DequantizeQ5_0(ReadOnlySpan<BlockQ5_0> source, Span<float> destination)
    {
        CheckBlocks(destination.Length, source.Length, BlockQ5_0.Elements);
        for (int b = 0; b < source.Length; b++)
        {
            ref readonly BlockQ5_0 block = ref source[b];
            float d = (float)block.Scale;
            Span<float> y = destination.Slice(b * BlockQ5_0.Elements, BlockQ5_0.Elements);
            for (int j = 0; j < 16; j++)
            {
                int x0 = ((block.Quants[j] & 0x0F) | (int)(((block.HighBits >> j) << 4) & 0x10)) - 16;
                int x1 = ((block.Quants[j] >> 4) | (int)((block.HighBits >> (j + 12)) & 0x10)) - 16;
                y[j] = x0 * d;
                y[j + 16] = x1 * d;
            }
        }
    }

    public static void DequantizeQ5_1(ReadOnlySpan<BlockQ5_1> source, Span<float> destination)
    {
        CheckBlocks(destination.Length, source.Length, BlockQ5_1.Elements);
        for (int b = 0; b < source.Length; b++)
        {
            ref readonly BlockQ5_1 block = ref source[b];
            float d = (float)block.Scale;
            float m = (float)block.Minimum;
            Span<float> y = destination.Slice(b * BlockQ5_1.Elements, BlockQ5_1.Elements);
            for (int j = 0; j < 16; j++)
            {
                int x0 = (block.Quants[j] & 0x0F) | (int)(((block.HighBits >> j) << 4) & 0x10);
                int x1 = (block.Quants[j] >> 4) | (int)((block.HighBits >> (j + 12)) & 0x10);
                y[j] = x0 * d + m;
                y[j + 16] = x1 * d + m;
            }
        }
    }

    public static void DequantizeQ4_K(ReadOnlySpan<BlockQ4_K> source, Span<float> destination)
    {
        CheckBlocks(destination.Length, source.Length, BlockQ4_K.Elements);
        for (int b = 0; b < source.Length; b++)
        {
            ref readonly BlockQ4_K block = ref source[b];
            float d = (float)block.Scale;
            float min = (float)block.MinimumScale;
            Span<float> y = destination.Slice(b * BlockQ4_K.Elements, BlockQ4_K.Elements);
            // Four groups of 64 elements: 32 bytes of quants, low nibbles sub-block 2g, high nibbles 2g + 1.
            for (int g = 0; g < 4; g++)
            {
                (int sc0, int m0) = block.Scales.Get(2 * g);
                (int sc1, int m1) = block.Scales.Get(2 * g + 1);
                float d1 = d * sc0, min1 = min * m0;
                float d2 = d * sc1, min2 = min * m1;
                for (int l = 0; l < 32; l++)
                {
                    byte q = block.Quants[32 * g + l];
                    y[64 * g + l] = d1 * (q & 0x0F) - min1;
                    y[64 * g + 32 + l] = d2 * (q >> 4) - min2;
                }
            }
        }
    }

    public static void DequantizeQ5_K(ReadOnlySpan<BlockQ5_K> source, Span<float> destination)
    {
        CheckBlocks(destination.Length, source.Length, BlockQ5_K.Elements);
        for (int b = 0; b < source.Length; b++)
        {
            ref readonly BlockQ5_K block = ref source[b];
            float d = (float)block.Scale;
            float min = (float)block.MinimumScale;
            Span<float> y = destination.Slice(b * BlockQ5_K.Elements, BlockQ5_K.Elements);
            for (int g = 0; g < 4; g++)
            {
                (int sc0, int m0) = block.Scales.Get(2 * g);
                (int sc1, int m1) = block.Scales.Get(2 * g + 1);
                float d1 = d * sc0, min1 = min * m0;
                float d2 = d * sc1, min2 = min * m1;
                int lowBit = 1 << (2 * g), highBit = 2 << (2 * g);
                for (int l = 0; l < 32; l++)
                {
                    byte q = block.Quants[32 * g + l];
                    byte h = block.HighBits[l];
                    y[64 * g + l] = d1 * ((q & 0x0F) + ((h & lowBit) != 0 ? 16 : 0)) - min1;
                    y[64 * g + 32 + l] = d2 * ((q >> 4) + ((h & highBit) != 0 ? 16 : 0)) - min2;
                }
            }
        }
    }

    public static void DequantizeQ6_K(ReadOnlySpan<BlockQ6_K> source, Span<float> destination)
    {
        CheckBlocks(destination.Length, source.Length, BlockQ6_K.Elements);
        for (int b = 0; b < source.Length; b++)
        {
            ref readonly BlockQ6_K block = ref source[b];
            float d = (float)block.Scale;
            Span<float> y = destination.Slice(b * BlockQ6_K.Elements, BlockQ6_K.Elements);
            for (int half = 0; half < 2; half++)
            {
                int ql = 64 * half, qh = 32 * half, sc = 8 * half, y0 = 128 * half;
                for (int l = 0; l < 32; l++)
                {
                    int s = l / 16;
                    byte low0 = block.Low[ql + l], low32 = block.Low[ql + l + 32], high = block.High[qh + l];
                    int q1 = ((low0 & 0x0F) | ((high & 3) << 4)) - 32;
                    int q2 = ((low32 & 0x0F) | (((high >> 2) & 3) << 4)) - 32;
                    int q3 = ((low0 >> 4) | (((high >> 4) & 3) << 4)) - 32;
                    int q4 = ((low32 >> 4) | (((high >> 6) & 3) << 4)) - 32;
                    y[y0 + l] = d * block.Scales[sc + s] * q1;
                    y[y0 + l + 32] = d * block.Scales[sc + s + 2] * q2;
                    y[y0 + l + 64] = d * block.Scales[sc + s + 4] * q3;
                    y[y0 + l + 96] = d * block.Scales[sc + s + 6] * q4;
                }
            }
        }
    }

    /// <summary>bf16 is the top half of an f32: the conversion is exact.</summary>
    public static void DequantizeBF16(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        CheckBlocks(destination.Length, source.Length, 1);
        for (int i = 0; i < source.Length; i++)
        {
            destination[i] = BitConverter.Int32BitsToSingle(source[i] << 16);
        }
    }

    /// <summary>Dequantizes a row of <paramref name="type"/>; the byte count must be exactly the row's.</summary>
    public static void Dequantize(QuantType type, ReadOnlySpan<byte> source, Span<float> destination)
    {
        switch (type)
        {
            case QuantType.Q5_0: DequantizeQ5_0(Blocks<BlockQ5_0>(source, destination.Length, BlockQ5_0.Elements, BlockQ5_0.Bytes), destination); break;
            case QuantType.Q5_1: DequantizeQ5_1(Blocks<BlockQ5_1>(source, destination.Length, BlockQ5_1.Elements, BlockQ5_1.Bytes), destination); break;
            case QuantType.Q4_K: DequantizeQ4_K(Blocks<BlockQ4_K>(source, destination.Length, BlockQ4_K.Elements, BlockQ4_K.Bytes), destination); break;
            case QuantType.Q5_K: DequantizeQ5_K(Blocks<BlockQ5_K>(source, destination.Length, BlockQ5_K.Elements, BlockQ5_K.Bytes), destination); break;
            case QuantType.Q6_K: DequantizeQ6_K(Blocks<BlockQ6_K>(source, destination.Length, BlockQ6_K.Elements, BlockQ6_K.Bytes), destination); break;
            case QuantType.BF16: DequantizeBF16(Blocks<ushort>(source, destination.Length, 1, 2), destination); break;
            default: throw new NotSupportedException($"Tensor type {type} is not a storage-only type.");
        }
    }

    private static ReadOnlySpan<TBlock> Blocks<TBlock>(ReadOnlySpan<byte> bytes, int elements, int blockElements, int blockBytes)
        where TBlock : struct
    {
        if (elements % blockElements != 0)
        {
            throw new ArgumentException($"The row has {elements} elements; this type needs a multiple of {blockElements}.");
        }
        long needed = (long)elements / blockElements * blockBytes;
        if (bytes.Length != needed)
        {
            throw new ArgumentException($"The buffer has {bytes.Length} bytes; the row needs exactly {needed}.");
        }
        return MemoryMarshal.Cast<byte, TBlock>(bytes);
    }

    private static void CheckBlocks(int elements, int blocks, int blockElements)
    {
        if (elements != (long)blocks * blockElements)
        {
            throw new ArgumentException($"{elements} elements do not fill {blocks} blocks of {blockElements}.");
        }
    }
}
