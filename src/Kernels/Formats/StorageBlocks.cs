using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace EdgeSlm.Kernels.Formats;

// The block types a downloaded GGUF file carries beside q4_0 and q8_0 (a "Q4_K_M" file is mostly q4_k and q6_k,
// with q5_0 / q8_0 where a row is not a multiple of 256 elements). EdgeSlm has no kernels for them: the loader
// converts them to a type it has (Conversion/LoadConversion.cs). Each struct is ggml's block_* byte for byte
// (ggml-common.h), its size pinned in BlockFormatTests as ggml pins it with a static_assert.

/// <summary>ggml's <c>block_q5_0</c>: fp16 scale <c>d</c>, the fifth bits of the 32 quants, their low nibbles
/// (element j low, j + 16 high, as q4_0); value = (q - 16) * d.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct BlockQ5_0
{
    public const int Elements = 32;
    public const int Bytes = 22;

    public Half Scale;
    public uint HighBits;                 // bit j: the fifth bit of element j (ggml memcpys qh[4] into a uint32)
    public BlockQ4_0.PackedNibbles Quants;

    /// <summary>The quant (0..31, before subtracting 16) of element <paramref name="index"/>.</summary>
    public readonly int Quant(int index)
    {
        int low = index < 16 ? Quants[index] & 0x0F : Quants[index - 16] >> 4;
        return low | (int)((HighBits >> index) & 1) << 4;
    }
}

/// <summary>ggml's <c>block_q5_1</c>: fp16 scale <c>d</c> and minimum <c>m</c>, then as q5_0; value = q * d + m.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct BlockQ5_1
{
    public const int Elements = 32;
    public const int Bytes = 24;

    public Half Scale;
    public Half Minimum;
    public uint HighBits;
    public BlockQ4_0.PackedNibbles Quants;

    /// <summary>The quant (0..31) of element <paramref name="index"/>.</summary>
    public readonly int Quant(int index)
    {
        int low = index < 16 ? Quants[index] & 0x0F : Quants[index - 16] >> 4;
        return low | (int)((HighBits >> index) & 1) << 4;
    }
}

/// <summary>
/// The 12 bytes holding a k-quant super-block's eight 6-bit sub-block scales and eight 6-bit minimums
/// (q4_k, q5_k): sub-blocks 0–3 in the low 6 bits of bytes 0–3 (scales) and 4–7 (minimums); sub-blocks 4–7
/// in the nibbles of bytes 8–11 (scale low, minimum high), their top two bits in the top bits of bytes 0–7.
/// </summary>
[InlineArray(12)]
public struct KQuantScales
{
    private byte _first;

    /// <summary>ggml's <c>get_scale_min_k4</c>: sub-block <paramref name="j"/>'s scale and minimum, 0..63 each.</summary>
    public readonly (int Scale, int Minimum) Get(int j)
    {
        ReadOnlySpan<byte> q = this;
        return j < 4
            ? (q[j] & 63, q[j + 4] & 63)
            : ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/// <summary>
/// ggml's <c>block_q4_K</c>: 256 elements in eight sub-blocks of 32; fp16 <c>d</c> and <c>dmin</c> scale the
/// sub-blocks' 6-bit scales and minimums. Bytes 32·i .. 32·i + 31 of the quants hold sub-block 2i in their low
/// nibbles and 2i + 1 in their high ones; value = d·scale·q − dmin·minimum.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct BlockQ4_K
{
    public const int Elements = 256;
    public const int Bytes = 144;

    public Half Scale;
    public Half MinimumScale;
    public KQuantScales Scales;
    public Nibbles Quants;

    [InlineArray(128)]
    public struct Nibbles
    {
        private byte _first;
    }
}

/// <summary>
/// ggml's <c>block_q5_K</c>: q4_k plus a fifth bit per element. Bit 2i of <c>qh[l]</c> is the fifth bit of element l
/// of sub-block 2i, bit 2i + 1 that of element l of sub-block 2i + 1; value = d·scale·q − dmin·minimum, q in 0..31.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct BlockQ5_K
{
    public const int Elements = 256;
    public const int Bytes = 176;

    public Half Scale;
    public Half MinimumScale;
    public KQuantScales Scales;
    public HighBitBytes HighBits;
    public BlockQ4_K.Nibbles Quants;

    [InlineArray(32)]
    public struct HighBitBytes
    {
        private byte _first;
    }
}

/// <summary>
/// ggml's <c>block_q6_K</c>: 256 elements in sixteen sub-blocks of 16, each with a signed 8-bit scale, under one
/// fp16 <c>d</c> (stored last). Each half of 128 elements takes 64 bytes of low nibbles and 32 of high bit pairs:
/// element l (l &lt; 32) of the half has its low bits in <c>ql[l]</c>'s low nibble and its high pair in bits 0–1
/// of <c>qh[l]</c>; element l + 32 in <c>ql[l + 32]</c>'s low nibble and bits 2–3; l + 64 in <c>ql[l]</c>'s high
/// nibble and bits 4–5; l + 96 in <c>ql[l + 32]</c>'s high nibble and bits 6–7; value = d·scale·(q − 32).
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct BlockQ6_K
{
    public const int Elements = 256;
    public const int Bytes = 210;

    public BlockQ4_K.Nibbles Low;
    public HighPairs High;
    public SubBlockScales Scales;
    public Half Scale;

    [InlineArray(64)]
    public struct HighPairs
    {
        private byte _first;
    }

    [InlineArray(16)]
    public struct SubBlockScales
    {
        private sbyte _first;
    }
}
