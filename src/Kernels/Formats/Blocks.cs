using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace EdgeSlm.Kernels.Formats;

/// <summary>
/// ggml's <c>block_q4_0</c>, byte for byte: an fp16 scale <c>d</c> and 32 four-bit quants packed in 16 bytes.
/// Byte j holds element j in its low nibble and element j + 16 in its high nibble; element value = (q - 8) * d.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct BlockQ4_0
{
    public const int Elements = 32;
    public const int Bytes = 18;

    public Half Scale;
    public PackedNibbles Quants;

    [InlineArray(16)]
    public struct PackedNibbles
    {
        private byte _first;
    }

    /// <summary>The quant (0..15, before subtracting 8) of element <paramref name="index"/>.</summary>
    public readonly int Quant(int index) =>
        index < 16 ? Quants[index] & 0x0F : Quants[index - 16] >> 4;
}

/// <summary>ggml's <c>block_q8_0</c>, byte for byte: an fp16 scale <c>d</c> and 32 signed bytes; value = q * d.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct BlockQ8_0
{
    public const int Elements = 32;
    public const int Bytes = 34;

    public Half Scale;
    public SignedBytes Quants;

    [InlineArray(32)]
    public struct SignedBytes
    {
        private sbyte _first;
    }
}
