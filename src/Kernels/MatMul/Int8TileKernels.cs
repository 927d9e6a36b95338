using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
using System.Runtime.Intrinsics;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;

namespace EdgeSlm.Kernels.MatMul;

// The quantized matrix kernels, every tier in this one file, the reference first.
//
// All tiers share one schedule: a tile of 4 weight rows is decoded once per 32-weight block and multiplied
// with 1 or 4 tokens' activation blocks (register blocking), the 4 rows' integer sums are reduced into one
// vector [r0 r1 r2 r3], converted to float and accumulated with the scales d_w * d_x. Output for a token is
// contiguous over rows, so the 4 results are stored as one vector. Tiles at the edge of the matrix repeat a
// real row or token and drop the extra results, so no tier needs separate tail code.
//
// Tiers differ only in how they decode a block and multiply 32 int8 pairs:
//   Reference       scalar, ggml's order of operations (sum_i * d_w * d_x per block)
//   Vector128       portable Vector128 (widen to int16, multiply, widen to int32)
//   AdvSimd         ARMv8.0 NEON: SMULL / SMLAL2 into int16, SADALP into int32
//   AdvSimdDotProd  ARMv8.2 NEON: two SDOT per block
//   Avx2            x64: PMADDUBSW / PMADDWD on 256-bit vectors, a whole block per register
//   AvxVnni         x64: VPDPBUSD on 256-bit vectors
//   Vector512       x64 with AVX-512 BW: PMADDUBSW / PMADDWD on 512-bit vectors, 16 rows per tile
//
// Integer block sums are exact in every tier; only the float accumulation order differs, hence the named
// tolerance in the tests. Activation quants are in [-127, 127] (ActivationQuantizer), which keeps every
// 16-bit pair sum below 32768 (at most 2 * 128 * 127).

/// <summary>How a weight type's blocks are laid out and decoded.</summary>
internal unsafe interface IWeightFormat
{
    static abstract int BlockBytes { get; }

    /// <summary>Multiplier that turns the fp16 scale's bits (shifted into a float) into the scale the 128-bit kernels use.</summary>
    static abstract float ScaleBitsMultiplier128 { get; }

    /// <summary>Σ w·a over one block, exactly, in scalar code.</summary>
    static abstract int DotReference(byte* block, sbyte* activations);

    /// <summary>
    /// The block's 32 weights as signed bytes, possibly times a power of two that <see cref="ScaleBitsMultiplier128"/> undoes.
    /// <paramref name="nibbleFlip"/> (0x88 in every byte) and <paramref name="highNibble"/> (0xF0) are passed in from
    /// outside the loop: made inside, the JIT rebuilds them on every block.
    /// </summary>
    static abstract void Decode128(byte* block, Vector128<byte> nibbleFlip, Vector128<byte> highNibble, out Vector128<sbyte> low, out Vector128<sbyte> high);

    /// <summary>The block as the unsigned operand of a u8·s8 multiply, and the signs to move onto the activations.</summary>
    static abstract Vector256<byte> Decode256(byte* block, Vector128<byte> lowNibble, out Vector256<sbyte> signs);

    /// <summary>Σ w·a as 8 int lanes, before subtracting <see cref="ActivationSumMultiplier256"/> · Σa.</summary>
    static abstract Vector256<int> Dot256<TDot>(Vector256<byte> weights, Vector256<sbyte> signs, Vector256<sbyte> activations)
        where TDot : struct, IInt8Dot256;

    static abstract int ActivationSumMultiplier256 { get; }
}

internal readonly unsafe struct Q4_0Weights : IWeightFormat
{
    public static int BlockBytes => BlockQ4_0.Bytes;

    // Decode128 yields 16·(q - 8): fold the 1/16 into the fp16 rebias (2^112 / 16, still exact).
    public static float ScaleBitsMultiplier128 => 3.2451855365842673e32f; // 2^108

    public static int ActivationSumMultiplier256 => 8;

    public static int DotReference(byte* block, sbyte* a)
    {
        byte* q = block + 2;
        int sum = 0;
        for (int j = 0; j < 16; j++)
        {
            sum += ((q[j] & 0x0F) - 8) * a[j] + ((q[j] >> 4) - 8) * a[j + 16];
        }
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Decode128(byte* block, Vector128<byte> nibbleFlip, Vector128<byte> highNibble, out Vector128<sbyte> low, out Vector128<sbyte> high)
    {
        // q ^ 8 is (q - 8) as a 4-bit two's complement number; placed in the top nibble of a byte it reads as
        // 16·(q - 8). One XOR flips both nibbles, then a shift (low) or a mask (high) moves each into place.
        Vector128<byte> flipped = Vector128.Load(block + 2) ^ nibbleFlip;
        low = (flipped << 4).AsSByte();
        high = (flipped & highNibble).AsSByte();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Decode256(byte* block, Vector128<byte> lowNibble, out Vector256<sbyte> signs)
    {
        // Nibbles 0..15 as they are (unsigned operand); the -8 is taken off later as 8·Σa.
        Vector128<byte> packed = Vector128.Load(block + 2);
        signs = default;
        return Vector256.Create(packed & lowNibble, (packed.AsUInt16() >> 4).AsByte() & lowNibble);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot256<TDot>(Vector256<byte> weights, Vector256<sbyte> signs, Vector256<sbyte> activations)
        where TDot : struct, IInt8Dot256 => TDot.DotUnsigned(weights, activations);
}

internal readonly unsafe struct Q8_0Weights : IWeightFormat
{
    public static int BlockBytes => BlockQ8_0.Bytes;

    public static float ScaleBitsMultiplier128 => 5.192296858534828e33f; // 2^112

    public static int ActivationSumMultiplier256 => 0;

    public static int DotReference(byte* block, sbyte* a)
    {
        sbyte* q = (sbyte*)(block + 2);
        int sum = 0;
        for (int j = 0; j < 32; j++)
        {
            sum += q[j] * a[j];
        }
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Decode128(byte* block, Vector128<byte> nibbleFlip, Vector128<byte> highNibble, out Vector128<sbyte> low, out Vector128<sbyte> high)
    {
        low = Vector128.Load((sbyte*)(block + 2));
        high = Vector128.Load((sbyte*)(block + 18));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Decode256(byte* block, Vector128<byte> lowNibble, out Vector256<sbyte> signs)
    {
        // u8·s8 wants one unsigned operand: |w|, with w's sign moved onto the activations (as ggml does).
        signs = Vector256.Load((sbyte*)(block + 2));
        return Avx2.Abs(signs);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot256<TDot>(Vector256<byte> weights, Vector256<sbyte> signs, Vector256<sbyte> activations)
        where TDot : struct, IInt8Dot256 => TDot.DotUnsigned(weights, Avx2.Sign(activations, signs));
}

/// <summary>32 int8 products summed into 4 int lanes (how the lanes split the sum is the tier's business).</summary>
internal interface IInt8Dot128
{
    static abstract Vector128<int> Dot(Vector128<sbyte> wLow, Vector128<sbyte> wHigh, Vector128<sbyte> aLow, Vector128<sbyte> aHigh);

    /// <summary>[Σr0, Σr1, Σr2, Σr3].</summary>
    static abstract Vector128<int> SumRows(Vector128<int> r0, Vector128<int> r1, Vector128<int> r2, Vector128<int> r3);
}

internal readonly struct Vector128Dot : IInt8Dot128
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> Dot(Vector128<sbyte> wLow, Vector128<sbyte> wHigh, Vector128<sbyte> aLow, Vector128<sbyte> aHigh)
    {
        (Vector128<short> w0, Vector128<short> w1) = Vector128.Widen(wLow);
        (Vector128<short> a0, Vector128<short> a1) = Vector128.Widen(aLow);
        (Vector128<short> w2, Vector128<short> w3) = Vector128.Widen(wHigh);
        (Vector128<short> a2, Vector128<short> a3) = Vector128.Widen(aHigh);
        (Vector128<int> p0, Vector128<int> p1) = Vector128.Widen(w0 * a0 + w1 * a1);
        (Vector128<int> p2, Vector128<int> p3) = Vector128.Widen(w2 * a2 + w3 * a3);
        return (p0 + p1) + (p2 + p3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> SumRows(Vector128<int> r0, Vector128<int> r1, Vector128<int> r2, Vector128<int> r3) =>
        Vector128.Create(Vector128.Sum(r0), Vector128.Sum(r1), Vector128.Sum(r2), Vector128.Sum(r3));
}

internal readonly struct AdvSimdDot : IInt8Dot128
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> Dot(Vector128<sbyte> wLow, Vector128<sbyte> wHigh, Vector128<sbyte> aLow, Vector128<sbyte> aHigh)
    {
        Vector128<short> low = AdvSimd.MultiplyWideningLower(wLow.GetLower(), aLow.GetLower());
        low = AdvSimd.MultiplyWideningUpperAndAdd(low, wLow, aLow);
        Vector128<short> high = AdvSimd.MultiplyWideningLower(wHigh.GetLower(), aHigh.GetLower());
        high = AdvSimd.MultiplyWideningUpperAndAdd(high, wHigh, aHigh);
        return AdvSimd.AddPairwiseWideningAndAdd(AdvSimd.AddPairwiseWidening(low), high);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> SumRows(Vector128<int> r0, Vector128<int> r1, Vector128<int> r2, Vector128<int> r3) =>
        AdvSimd.Arm64.AddPairwise(AdvSimd.Arm64.AddPairwise(r0, r1), AdvSimd.Arm64.AddPairwise(r2, r3));
}

internal readonly struct AdvSimdDotProdDot : IInt8Dot128
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> Dot(Vector128<sbyte> wLow, Vector128<sbyte> wHigh, Vector128<sbyte> aLow, Vector128<sbyte> aHigh) =>
        Dp.DotProduct(Dp.DotProduct(Vector128<int>.Zero, wLow, aLow), wHigh, aHigh);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> SumRows(Vector128<int> r0, Vector128<int> r1, Vector128<int> r2, Vector128<int> r3) =>
        AdvSimdDot.SumRows(r0, r1, r2, r3);
}

/// <summary>Σ u8·s8 over 32 pairs into 8 int lanes.</summary>
internal interface IInt8Dot256
{
    static abstract Vector256<int> DotUnsigned(Vector256<byte> u, Vector256<sbyte> s);
}

internal readonly struct Avx2Dot : IInt8Dot256
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> DotUnsigned(Vector256<byte> u, Vector256<sbyte> s) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u, s), Vector256<short>.One);
}

internal readonly struct AvxVnniDot : IInt8Dot256
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> DotUnsigned(Vector256<byte> u, Vector256<sbyte> s) =>
        AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, u, s);
}

/// <summary>The scalar reference: one row, one token, one block at a time, in ggml's order of operations.</summary>
internal static unsafe class ReferenceTiles<TFormat> where TFormat : struct, IWeightFormat
{
    public static void RunRows(in MatMulArgs args, int rowStart, int rowEnd)
    {
        for (int t = 0; t < args.Tokens; t++)
        {
            byte* activations = args.ActivationRow(t);
            for (int r = rowStart; r < rowEnd; r++)
            {
                byte* weights = args.WeightRow(r);
                float sum = 0f;
                for (int b = 0; b < args.Blocks; b++)
                {
                    byte* w = weights + b * TFormat.BlockBytes;
                    byte* a = activations + b * ActivationBlock.Bytes;
                    int blockSum = TFormat.DotReference(w, (sbyte*)(a + ActivationBlock.QuantsOffset));
                    sum += blockSum * (float)*(Half*)w * *(float*)(a + ActivationBlock.ScaleOffset);
                }
                args.Output[(nint)t * args.OutputStride + r] = sum;
            }
        }
    }
}

/// <summary>A tiled tier's two kernels: 4 rows × 1 token and 4 rows × 4 tokens.</summary>
internal unsafe interface ITileKernels
{
    static abstract Vector128<float> Tile4x1(byte* w0, byte* w1, byte* w2, byte* w3, in MatMulArgs args, int token);

    static abstract void Tile4x4(byte* w0, byte* w1, byte* w2, byte* w3, in MatMulArgs args, int t0, int t1, int t2, int t3,
        out Vector128<float> y0, out Vector128<float> y1, out Vector128<float> y2, out Vector128<float> y3);
}

/// <summary>The driver shared by the tiled tiers: walks 4-row tiles and 4- or 1-token tiles.</summary>
internal static unsafe class TileWalk
{
    /// <summary>Walks 4-row tiles and, within each, 4-token tiles (1-token for a last single token).</summary>
    public static void RunRows<TTiles>(in MatMulArgs args, int rowStart, int rowEnd) where TTiles : struct, ITileKernels
    {
        for (int row = rowStart; row < rowEnd; row += 4)
        {
            int live = Rows(args, row, rowEnd, out byte* w0, out byte* w1, out byte* w2, out byte* w3);
            if (args.Tokens == 1 && Sse.IsSupported)
            {
                // A matrix-vector product streams the weights from memory once, 4 short rows at a time, which the
                // hardware prefetchers do not follow: ask for the tile after next (its 4 rows are contiguous).
                byte* ahead = args.WeightRow(row + 8);
                for (nint offset = 0; offset < 4 * args.WeightRowBytes; offset += 64)
                {
                    Sse.Prefetch0(ahead + offset);
                }
            }
            int t = 0;
            for (; t + 1 < args.Tokens; t += 4)
            {
                // 2 or 3 tokens left: repeat the last one rather than re-decode the weights per token.
                int last = args.Tokens - 1;
                TTiles.Tile4x4(w0, w1, w2, w3, args, t, t + 1, Math.Min(t + 2, last), Math.Min(t + 3, last),
                    out Vector128<float> y0, out Vector128<float> y1, out Vector128<float> y2, out Vector128<float> y3);
                Store(args, y0, t, row, live);
                Store(args, y1, t + 1, row, live);
                if (t + 2 <= last) Store(args, y2, t + 2, row, live);
                if (t + 3 <= last) Store(args, y3, t + 3, row, live);
            }
            if (t < args.Tokens)
            {
                Store(args, TTiles.Tile4x1(w0, w1, w2, w3, args, t), t, row, live);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(in MatMulArgs args, Vector128<float> values, int token, int row, int liveRows)
    {
        float* y = args.Output + (nint)token * args.OutputStride + row;
        if (liveRows == 4)
        {
            values.Store(y);
            return;
        }
        for (int i = 0; i < liveRows; i++)
        {
            y[i] = values.GetElement(i);
        }
    }

    /// <summary>Four row pointers for the tile at <paramref name="row"/>, repeating the first where the matrix ends.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Rows(in MatMulArgs args, int row, int rowEnd, out byte* w0, out byte* w1, out byte* w2, out byte* w3)
    {
        int live = Math.Min(4, rowEnd - row);
        w0 = args.WeightRow(row);
        w1 = live > 1 ? w0 + args.WeightRowBytes : w0;
        w2 = live > 2 ? w0 + 2 * args.WeightRowBytes : w0;
        w3 = live > 3 ? w0 + 3 * args.WeightRowBytes : w0;
        return live;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<uint> ScaleBits(byte* w0, byte* w1, byte* w2, byte* w3) =>
        Vector128.Create((uint)*(ushort*)w0, *(ushort*)w1, *(ushort*)w2, *(ushort*)w3);
}

/// <summary>The 128-bit tiers (portable, NEON, NEON with SDOT): one block is two Vector128 of int8.</summary>
internal readonly unsafe struct Vector128Tiles<TFormat, TDot> : ITileKernels
    where TFormat : struct, IWeightFormat
    where TDot : struct, IInt8Dot128
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static Vector128<float> Tile4x1(byte* w0, byte* w1, byte* w2, byte* w3, in MatMulArgs args, int token)
    {
        byte* a = args.ActivationRow(token);
        Vector128<float> sum = Vector128<float>.Zero;
        Vector128<byte> flip = Vector128.Create((byte)0x88), highNibble = Vector128.Create((byte)0xF0);
        ScaleConstants scaleConstants = new();
        for (int b = 0; b < args.Blocks; b++, w0 += TFormat.BlockBytes, w1 += TFormat.BlockBytes, w2 += TFormat.BlockBytes, w3 += TFormat.BlockBytes, a += ActivationBlock.Bytes)
        {
            TFormat.Decode128(w0, flip, highNibble, out Vector128<sbyte> w0Low, out Vector128<sbyte> w0High);
            TFormat.Decode128(w1, flip, highNibble, out Vector128<sbyte> w1Low, out Vector128<sbyte> w1High);
            TFormat.Decode128(w2, flip, highNibble, out Vector128<sbyte> w2Low, out Vector128<sbyte> w2High);
            TFormat.Decode128(w3, flip, highNibble, out Vector128<sbyte> w3Low, out Vector128<sbyte> w3High);
            Vector128<float> scales = RowScales(w0, w1, w2, w3, scaleConstants) * *(float*)(a + ActivationBlock.ScaleOffset);
            sum = Accumulate(sum, a, scales, w0Low, w0High, w1Low, w1High, w2Low, w2High, w3Low, w3High);
        }
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Tile4x4(byte* w0, byte* w1, byte* w2, byte* w3, in MatMulArgs args, int t0, int t1, int t2, int t3,
        out Vector128<float> y0, out Vector128<float> y1, out Vector128<float> y2, out Vector128<float> y3)
    {
        byte* a0 = args.ActivationRow(t0), a1 = args.ActivationRow(t1), a2 = args.ActivationRow(t2), a3 = args.ActivationRow(t3);
        Vector128<float> sum0 = default, sum1 = default, sum2 = default, sum3 = default;
        Vector128<byte> flip = Vector128.Create((byte)0x88), highNibble = Vector128.Create((byte)0xF0);
        ScaleConstants scaleConstants = new();
        for (int b = 0; b < args.Blocks; b++, w0 += TFormat.BlockBytes, w1 += TFormat.BlockBytes, w2 += TFormat.BlockBytes, w3 += TFormat.BlockBytes)
        {
            TFormat.Decode128(w0, flip, highNibble, out Vector128<sbyte> w0Low, out Vector128<sbyte> w0High);
            TFormat.Decode128(w1, flip, highNibble, out Vector128<sbyte> w1Low, out Vector128<sbyte> w1High);
            TFormat.Decode128(w2, flip, highNibble, out Vector128<sbyte> w2Low, out Vector128<sbyte> w2High);
            TFormat.Decode128(w3, flip, highNibble, out Vector128<sbyte> w3Low, out Vector128<sbyte> w3High);
            Vector128<float> scales = RowScales(w0, w1, w2, w3, scaleConstants);
            nint offset = (nint)b * ActivationBlock.Bytes;

            sum0 = Accumulate(sum0, a0 + offset, scales * *(float*)(a0 + offset), w0Low, w0High, w1Low, w1High, w2Low, w2High, w3Low, w3High);
            sum1 = Accumulate(sum1, a1 + offset, scales * *(float*)(a1 + offset), w0Low, w0High, w1Low, w1High, w2Low, w2High, w3Low, w3High);
            sum2 = Accumulate(sum2, a2 + offset, scales * *(float*)(a2 + offset), w0Low, w0High, w1Low, w1High, w2Low, w2High, w3Low, w3High);
            sum3 = Accumulate(sum3, a3 + offset, scales * *(float*)(a3 + offset), w0Low, w0High, w1Low, w1High, w2Low, w2High, w3Low, w3High);
        }
        y0 = sum0;
        y1 = sum1;
        y2 = sum2;
        y3 = sum3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Accumulate(Vector128<float> sum, byte* a, Vector128<float> scales,
        Vector128<sbyte> w0Low, Vector128<sbyte> w0High, Vector128<sbyte> w1Low, Vector128<sbyte> w1High,
        Vector128<sbyte> w2Low, Vector128<sbyte> w2High, Vector128<sbyte> w3Low, Vector128<sbyte> w3High)
    {
        Vector128<sbyte> aLow = Vector128.Load((sbyte*)(a + ActivationBlock.QuantsOffset));
        Vector128<sbyte> aHigh = Vector128.Load((sbyte*)(a + ActivationBlock.QuantsOffset + 16));
        Vector128<int> sums = TDot.SumRows(
            TDot.Dot(w0Low, w0High, aLow, aHigh), TDot.Dot(w1Low, w1High, aLow, aHigh),
            TDot.Dot(w2Low, w2High, aLow, aHigh), TDot.Dot(w3Low, w3High, aLow, aHigh));
        return Vector128.MultiplyAddEstimate(Vector128.ConvertToSingle(sums), scales, sum);
    }

    /// <summary>Loop-invariant constants of <see cref="RowScales"/>, made once per tile.</summary>
    private readonly struct ScaleConstants()
    {
        // NEON: bits of the sign-extended half shifted left by 13, keeping the sign (bit 31) and exponent and
        // mantissa (bits 27..13). Portable: the masks of Fp16.ToSingle.
        public readonly Vector128<int> SignAndMagnitude = Vector128.Create(unchecked((int)0x8FFFE000));
        public readonly Vector128<uint> Magnitude = Vector128.Create(0x7FFFu);
        public readonly Vector128<uint> Sign = Vector128.Create(0x8000u);
        public readonly Vector128<float> Multiplier = Vector128.Create(TFormat.ScaleBitsMultiplier128);
    }

    /// <summary>The four rows' fp16 block scales as floats, exactly (see <see cref="Fp16"/>), times the format's decode factor.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> RowScales(byte* w0, byte* w1, byte* w2, byte* w3, in ScaleConstants constants)
    {
        if (AdvSimd.IsSupported)
        {
            // Four lane loads, one SSHLL: the sign lands in bit 31 (and 30..28, masked off) and the rest in place,
            // so a single multiply by 2^112 both rebiases the exponent and keeps the sign.
            Vector64<short> halves = AdvSimd.LoadAndInsertScalar(Vector64<short>.Zero, 0, (short*)w0);
            halves = AdvSimd.LoadAndInsertScalar(halves, 1, (short*)w1);
            halves = AdvSimd.LoadAndInsertScalar(halves, 2, (short*)w2);
            halves = AdvSimd.LoadAndInsertScalar(halves, 3, (short*)w3);
            Vector128<int> bits = AdvSimd.ShiftLeftLogicalWideningLower(halves, 13) & constants.SignAndMagnitude;
            return bits.AsSingle() * constants.Multiplier;
        }
        Vector128<uint> raw = TileWalk.ScaleBits(w0, w1, w2, w3);
        Vector128<float> magnitude = ((raw & constants.Magnitude) << 13).AsSingle() * constants.Multiplier;
        return (magnitude.AsUInt32() | ((raw & constants.Sign) << 16)).AsSingle();
    }
}

/// <summary>The 256-bit x64 tiers (AVX2, AVX-VNNI): one block is one Vector256 of int8.</summary>
internal readonly unsafe struct Vector256Tiles<TFormat, TDot> : ITileKernels
    where TFormat : struct, IWeightFormat
    where TDot : struct, IInt8Dot256
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static Vector128<float> Tile4x1(byte* w0, byte* w1, byte* w2, byte* w3, in MatMulArgs args, int token)
    {
        byte* a = args.ActivationRow(token);
        Vector128<float> sum = Vector128<float>.Zero;
        Vector128<byte> lowNibble = Vector128.Create((byte)0x0F);
        for (int b = 0; b < args.Blocks; b++, w0 += TFormat.BlockBytes, w1 += TFormat.BlockBytes, w2 += TFormat.BlockBytes, w3 += TFormat.BlockBytes, a += ActivationBlock.Bytes)
        {
            Vector256<byte> u0 = TFormat.Decode256(w0, lowNibble, out Vector256<sbyte> n0);
            Vector256<byte> u1 = TFormat.Decode256(w1, lowNibble, out Vector256<sbyte> n1);
            Vector256<byte> u2 = TFormat.Decode256(w2, lowNibble, out Vector256<sbyte> n2);
            Vector256<byte> u3 = TFormat.Decode256(w3, lowNibble, out Vector256<sbyte> n3);
            Vector128<float> scales = RowScales(w0, w1, w2, w3) * *(float*)(a + ActivationBlock.ScaleOffset);
            sum = Accumulate(sum, a, scales, u0, n0, u1, n1, u2, n2, u3, n3);
        }
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Tile4x4(byte* w0, byte* w1, byte* w2, byte* w3, in MatMulArgs args, int t0, int t1, int t2, int t3,
        out Vector128<float> y0, out Vector128<float> y1, out Vector128<float> y2, out Vector128<float> y3)
    {
        byte* a0 = args.ActivationRow(t0), a1 = args.ActivationRow(t1), a2 = args.ActivationRow(t2), a3 = args.ActivationRow(t3);
        Vector128<float> sum0 = default, sum1 = default, sum2 = default, sum3 = default;
        Vector128<byte> lowNibble = Vector128.Create((byte)0x0F);
        for (int b = 0; b < args.Blocks; b++, w0 += TFormat.BlockBytes, w1 += TFormat.BlockBytes, w2 += TFormat.BlockBytes, w3 += TFormat.BlockBytes,
            a0 += ActivationBlock.Bytes, a1 += ActivationBlock.Bytes, a2 += ActivationBlock.Bytes, a3 += ActivationBlock.Bytes)
        {
            Vector256<byte> u0 = TFormat.Decode256(w0, lowNibble, out Vector256<sbyte> n0);
            Vector256<byte> u1 = TFormat.Decode256(w1, lowNibble, out Vector256<sbyte> n1);
            Vector256<byte> u2 = TFormat.Decode256(w2, lowNibble, out Vector256<sbyte> n2);
            Vector256<byte> u3 = TFormat.Decode256(w3, lowNibble, out Vector256<sbyte> n3);
            Vector128<float> scales = RowScales(w0, w1, w2, w3);

            sum0 = Accumulate(sum0, a0, scales * *(float*)(a0 + ActivationBlock.ScaleOffset), u0, n0, u1, n1, u2, n2, u3, n3);
            sum1 = Accumulate(sum1, a1, scales * *(float*)(a1 + ActivationBlock.ScaleOffset), u0, n0, u1, n1, u2, n2, u3, n3);
            sum2 = Accumulate(sum2, a2, scales * *(float*)(a2 + ActivationBlock.ScaleOffset), u0, n0, u1, n1, u2, n2, u3, n3);
            sum3 = Accumulate(sum3, a3, scales * *(float*)(a3 + ActivationBlock.ScaleOffset), u0, n0, u1, n1, u2, n2, u3, n3);
        }
        y0 = sum0;
        y1 = sum1;
        y2 = sum2;
        y3 = sum3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Accumulate(Vector128<float> sum, byte* a, Vector128<float> scales,
        Vector256<byte> u0, Vector256<sbyte> n0, Vector256<byte> u1, Vector256<sbyte> n1,
        Vector256<byte> u2, Vector256<sbyte> n2, Vector256<byte> u3, Vector256<sbyte> n3)
    {
        Vector256<sbyte> activations = Vector256.Load((sbyte*)(a + ActivationBlock.QuantsOffset));
        Vector256<int> h;
        if (TFormat.ActivationSumMultiplier256 != 0 && typeof(TDot) == typeof(Avx2Dot))
        {
            // Q4_0 on AVX2: a nibble times an activation is at most 15·127, so PMADDUBSW's pair sums (≤ 3810)
            // can be added across rows twice more in 16 bits (≤ 15240) before one PMADDWD widens them: three
            // 16-bit horizontal adds and one widening instead of four widenings and three 32-bit adds.
            Vector256<short> p01 = Avx2.HorizontalAdd(Avx2.MultiplyAddAdjacent(u0, activations), Avx2.MultiplyAddAdjacent(u1, activations));
            Vector256<short> p23 = Avx2.HorizontalAdd(Avx2.MultiplyAddAdjacent(u2, activations), Avx2.MultiplyAddAdjacent(u3, activations));
            h = Avx2.MultiplyAddAdjacent(Avx2.HorizontalAdd(p01, p23), Vector256<short>.One);
        }
        else
        {
            Vector256<int> h01 = Avx2.HorizontalAdd(TFormat.Dot256<TDot>(u0, n0, activations), TFormat.Dot256<TDot>(u1, n1, activations));
            Vector256<int> h23 = Avx2.HorizontalAdd(TFormat.Dot256<TDot>(u2, n2, activations), TFormat.Dot256<TDot>(u3, n3, activations));
            h = Avx2.HorizontalAdd(h01, h23);
        }
        // h: [r0 r1 r2 r3] summed over the low 128 bits of the block, then over the high 128 bits.
        Vector128<int> sums = h.GetLower() + h.GetUpper();
        if (TFormat.ActivationSumMultiplier256 != 0)
        {
            sums -= Vector128.Create(TFormat.ActivationSumMultiplier256 * *(int*)(a + ActivationBlock.SumOffset));
        }
        return Vector128.MultiplyAddEstimate(Vector128.ConvertToSingle(sums), scales, sum);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> RowScales(byte* w0, byte* w1, byte* w2, byte* w3) =>
        Fp16.ToSingle(TileWalk.ScaleBits(w0, w1, w2, w3));
}

/// <summary>
/// Software prefetch for the 8- and 16-row kernels: while a tile is multiplied block by block, the next tile's
/// weights (its rows are contiguous) are prefetched in as many equal parts as there are blocks. In the encoder each
/// product starts with its weights in no cache, and the hardware prefetchers do not follow 8 or 16 rows read 18 or
/// 34 bytes at a time (docs/kernels.md, "Measurements behind the code").
/// </summary>
internal readonly unsafe struct TilePrefetch
{
    private readonly byte* _next;
    private readonly nint _part;

    /// <param name="nextRow">First row of the next tile (past the matrix: prefetches are hints and never fault).</param>
    public TilePrefetch(in MatMulArgs args, int nextRow, int tileRows)
    {
        _next = args.Weights + nextRow * args.WeightRowBytes;
        _part = (tileRows * args.WeightRowBytes + args.Blocks - 1) / args.Blocks;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Block(int block)
    {
        byte* p = _next + block * _part;
        for (nint offset = 0; offset < _part; offset += 64)
        {
            Sse.Prefetch0(p + offset);
        }
    }
}

/// <summary>How many tokens a group of <see cref="Vector256RowTiles8{TFormat, TDot}"/> multiplies (2 to 4), fixed at JIT time.</summary>
internal interface ITokenCount
{
    static abstract int Count { get; }
}

internal readonly struct OneToken : ITokenCount { public static int Count => 1; }
internal readonly struct TwoTokens : ITokenCount { public static int Count => 2; }
internal readonly struct ThreeTokens : ITokenCount { public static int Count => 3; }
internal readonly struct FourTokens : ITokenCount { public static int Count => 4; }

/// <summary>
/// The x64 tiers' main kernel: tiles of 8 rows × up to 16 tokens, block by block. Each block of the 8 rows is
/// transposed once, into a small buffer on the stack, so that each 32-bit lane holds 4 consecutive weights of one
/// row ([r0 .. r7], row order kept); 4 activation bytes of a token are broadcast to all lanes, so one multiply
/// serves 8 rows and no horizontal adds are needed. All the tile's tokens then use that block, in groups of 4
/// (a tail of 1 to 3 as 2 or 3: 10 tokens run as 4 + 4 + 2, not as 12), their float sums kept on the stack. The
/// weights are thus read from memory once per tile, with the arithmetic of every token between two blocks: a
/// token-outer order (all blocks for 4 tokens, then again for the next 4) waited on memory. Rows that do not
/// fill a tile of 8 go to the 4-row kernels of <see cref="Vector256Tiles{TFormat, TDot}"/>.
/// </summary>
internal static unsafe class Vector256RowTiles8<TFormat, TDot>
    where TFormat : struct, IWeightFormat
    where TDot : struct, IInt8Dot256
{
    private const int MaxTokens = 16;

    public static void RunRows(in MatMulArgs args, int rowStart, int rowEnd)
    {
        if (args.Tokens == 1)
        {
            // A matrix-vector product has no tokens to share a transposed block.
            Vector256RowVector8<TFormat, TDot>.RunRows(args, rowStart, rowEnd);
            return;
        }
        int row = rowStart;
        for (; row + 8 <= rowEnd; row += 8)
        {
            for (int t = 0; t < args.Tokens; t += MaxTokens)
            {
                Tile(args, row, t, Math.Min(MaxTokens, args.Tokens - t));
            }
        }
        if (row < rowEnd)
        {
            TileWalk.RunRows<Vector256Tiles<TFormat, TDot>>(args, row, rowEnd);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization), SkipLocalsInit]
    private static void Tile(in MatMulArgs args, int row, int firstToken, int tokens)
    {
        // Both buffers 64-byte aligned: the stack is only 16-byte aligned, and a vector split across cache lines
        // costs more than the tile saves (docs/kernels.md).
        byte* stack = stackalloc byte[(MaxTokens + 16) * 32 + 63];
        var sums = (Vector256<float>*)(((nint)stack + 63) & ~(nint)63);
        for (int i = 0; i < tokens; i++)
        {
            sums[i] = default;
        }
        // Q4_0: the 8 unsigned nibble vectors. Q8_0: the 8 signed weight vectors, then their 8 magnitudes.
        var block = (Vector256<byte>*)(sums + MaxTokens);
        byte* w0 = args.WeightRow(row);
        byte* w4 = w0 + 4 * args.WeightRowBytes;
        nint stride = args.WeightRowBytes, stride3 = 3 * args.WeightRowBytes;
        nint tokenBytes = (nint)args.Blocks * ActivationBlock.Bytes;
        byte* a = args.ActivationRow(firstToken);
        TilePrefetch next = new(args, row + 8, 8);
        for (int b = 0; b < args.Blocks; b++, w0 += TFormat.BlockBytes, w4 += TFormat.BlockBytes, a += ActivationBlock.Bytes)
        {
            if (TFormat.BlockBytes == BlockQ4_0.Bytes)
            {
                // Byte j holds weights j (low nibble) and j + 16 (high nibble): group g's low nibbles meet
                // activations 4g..4g+3, its high nibbles 16+4g..19+4g, i.e. vector 4 + g.
                Transpose(w0 + 2, w4 + 2, stride, stride3, out Vector256<byte> g0, out Vector256<byte> g1, out Vector256<byte> g2, out Vector256<byte> g3);
                Vector256<byte> mask = Vector256.Create((byte)0x0F);
                block[0] = g0 & mask; block[4] = (g0.AsUInt16() >> 4).AsByte() & mask;
                block[1] = g1 & mask; block[5] = (g1.AsUInt16() >> 4).AsByte() & mask;
                block[2] = g2 & mask; block[6] = (g2.AsUInt16() >> 4).AsByte() & mask;
                block[3] = g3 & mask; block[7] = (g3.AsUInt16() >> 4).AsByte() & mask;
            }
            else
            {
                Transpose(w0 + 2, w4 + 2, stride, stride3, out block[0], out block[1], out block[2], out block[3]);
                Transpose(w0 + 18, w4 + 18, stride, stride3, out block[4], out block[5], out block[6], out block[7]);
                for (int g = 0; g < 8; g++)
                {
                    block[8 + g] = Avx2.Abs(block[g].AsSByte());
                }
            }
            Vector256<float> scales = RowScales(w0, w4, stride, stride3);
            next.Block(b);

            int t = 0;
            for (; t + 4 <= tokens; t += 4)
            {
                Group<FourTokens>(block, a + t * tokenBytes, tokenBytes, scales, sums + t);
            }
            switch (tokens - t)
            {
                case 3: Group<ThreeTokens>(block, a + t * tokenBytes, tokenBytes, scales, sums + t); break;
                case 2: Group<TwoTokens>(block, a + t * tokenBytes, tokenBytes, scales, sums + t); break;
                case 1: Group<OneToken>(block, a + t * tokenBytes, 0, scales, sums + t); break;
            }
        }
        float* y = args.Output + (nint)firstToken * args.OutputStride + row;
        for (int i = 0; i < tokens; i++)
        {
            sums[i].Store(y + (nint)i * args.OutputStride);
        }
    }

    /// <summary>One block's products for 2 to 4 tokens (activation blocks <paramref name="tokenBytes"/> apart), added to their float sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Group<TTokens>(Vector256<byte>* block, byte* a0, nint tokenBytes, Vector256<float> scales, Vector256<float>* sums)
        where TTokens : struct, ITokenCount
    {
        int tokens = TTokens.Count;
        byte* a1 = a0 + tokenBytes, a2 = a1 + tokenBytes, a3 = a2 + tokenBytes;
        Vector256<int> i0 = default, i1 = default, i2 = default, i3 = default;
        for (int g = 0; g < 8; g++)
        {
            int offset = ActivationBlock.QuantsOffset + 4 * g;
            i0 = Products(i0, block, g, a0 + offset);
            if (tokens > 1) i1 = Products(i1, block, g, a1 + offset);
            if (tokens > 2) i2 = Products(i2, block, g, a2 + offset);
            if (tokens > 3) i3 = Products(i3, block, g, a3 + offset);
        }
        sums[0] = Accumulate(sums[0], i0, a0, scales);
        if (tokens > 1) sums[1] = Accumulate(sums[1], i1, a1, scales);
        if (tokens > 2) sums[2] = Accumulate(sums[2], i2, a2, scales);
        if (tokens > 3) sums[3] = Accumulate(sums[3], i3, a3, scales);
    }

    /// <summary>Adds vector <paramref name="g"/> of the block times the token's 4 activation bytes at <paramref name="a"/>, broadcast.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Products(Vector256<int> sums, Vector256<byte>* block, int g, byte* a)
    {
        Vector256<sbyte> x = Vector256.Create(*(int*)a).AsSByte();
        if (TFormat.BlockBytes == BlockQ4_0.Bytes)
        {
            if (typeof(TDot) == typeof(Avx2Dot))
            {
                // 16-bit pair sums of nibbles (0..15) times activations: at most 8 · 2 · 15 · 127 = 30480 in
                // magnitude over the block, so they are added in 16 bits and widened once (Accumulate).
                return (sums.AsInt16() + Avx2.MultiplyAddAdjacent(block[g], x)).AsInt32();
            }
            return AvxVnni.MultiplyWideningAndAdd(sums, block[g], x);
        }
        // Q8_0: |w| is the unsigned operand and w's sign moves onto the activations (as in the 4-row kernels).
        return sums + TDot.DotUnsigned(block[8 + g], Avx2.Sign(x, block[g].AsSByte()));
    }

    /// <summary>
    /// 16 bytes from each of 8 rows (at w0 + i·stride and w4 + i·stride) as 4 vectors, vector g holding bytes
    /// 4g..4g+3 of row i in 32-bit lane i.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose(byte* w0, byte* w4, nint stride, nint stride3,
        out Vector256<byte> g0, out Vector256<byte> g1, out Vector256<byte> g2, out Vector256<byte> g3)
    {
        // [r0 | r4], [r1 | r5], [r2 | r6], [r3 | r7], then a 4×4 transpose of 32-bit lanes within each 128-bit half.
        Vector256<int> r04 = Avx2.InsertVector128(Vector128.Load(w0).AsInt32().ToVector256Unsafe(), Vector128.Load(w4).AsInt32(), 1);
        Vector256<int> r15 = Avx2.InsertVector128(Vector128.Load(w0 + stride).AsInt32().ToVector256Unsafe(), Vector128.Load(w4 + stride).AsInt32(), 1);
        Vector256<int> r26 = Avx2.InsertVector128(Vector128.Load(w0 + 2 * stride).AsInt32().ToVector256Unsafe(), Vector128.Load(w4 + 2 * stride).AsInt32(), 1);
        Vector256<int> r37 = Avx2.InsertVector128(Vector128.Load(w0 + stride3).AsInt32().ToVector256Unsafe(), Vector128.Load(w4 + stride3).AsInt32(), 1);
        Vector256<int> low01 = Avx2.UnpackLow(r04, r15), high01 = Avx2.UnpackHigh(r04, r15);   // [r0.0 r1.0 r0.1 r1.1], [r0.2 r1.2 r0.3 r1.3]
        Vector256<int> low23 = Avx2.UnpackLow(r26, r37), high23 = Avx2.UnpackHigh(r26, r37);
        g0 = Avx2.UnpackLow(low01.AsInt64(), low23.AsInt64()).AsByte();
        g1 = Avx2.UnpackHigh(low01.AsInt64(), low23.AsInt64()).AsByte();
        g2 = Avx2.UnpackLow(high01.AsInt64(), high23.AsInt64()).AsByte();
        g3 = Avx2.UnpackHigh(high01.AsInt64(), high23.AsInt64()).AsByte();
    }

    /// <summary>The 8 rows' fp16 block scales as floats (see <see cref="Fp16"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> RowScales(byte* w0, byte* w4, nint stride, nint stride3)
    {
        Vector256<uint> bits = Vector256.Create(
            (uint)*(ushort*)w0, *(ushort*)(w0 + stride), *(ushort*)(w0 + 2 * stride), *(ushort*)(w0 + stride3),
            *(ushort*)w4, *(ushort*)(w4 + stride), *(ushort*)(w4 + 2 * stride), *(ushort*)(w4 + stride3));
        Vector256<float> magnitude = ((bits & Vector256.Create(0x7FFFu)) << 13).AsSingle() * Vector256.Create(Q8_0Weights.ScaleBitsMultiplier128);
        return (magnitude.AsUInt32() | ((bits & Vector256.Create(0x8000u)) << 16)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Accumulate(Vector256<float> sum, Vector256<int> sums, byte* a, Vector256<float> rowScales)
    {
        if (TFormat.BlockBytes == BlockQ4_0.Bytes && typeof(TDot) == typeof(Avx2Dot))
        {
            sums = Avx2.MultiplyAddAdjacent(sums.AsInt16(), Vector256<short>.One);
        }
        if (TFormat.ActivationSumMultiplier256 != 0)
        {
            sums -= Vector256.Create(TFormat.ActivationSumMultiplier256 * *(int*)(a + ActivationBlock.SumOffset));
        }
        return Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(sums), rowScales * *(float*)(a + ActivationBlock.ScaleOffset), sum);
    }
}

/// <summary>
/// The x64 matrix-vector product (one token, the decoder's generation step): tiles of 8 rows, block by block. Rows r
/// and r + 4 share a vector, one per 128-bit half: their weights 0..15 in one vector, 16..31 in a second, against the
/// token's activations 0..15 and 16..31 broadcast to both halves. Two multiplies then serve two rows, the four vectors
/// of a tile hold [r0 r4], [r1 r5], [r2 r6], [r3 r7] with 4 int lanes a row, and three horizontal adds reduce them to
/// [r0 .. r7], scaled once per block. Nothing is transposed, and the float sums are accumulated block by block in the
/// same order as the other kernels, so a token's outputs do not depend on which kernel computed them.
/// Rows that do not fill a tile of 8 go to the 4-row kernel.
/// </summary>
internal static unsafe class Vector256RowVector8<TFormat, TDot>
    where TFormat : struct, IWeightFormat
    where TDot : struct, IInt8Dot256
{
    // Software prefetch runs at least this far ahead of the tile being multiplied. One tile ahead was too close for
    // short rows: an 8-row tile of 576 columns (SmolLM2's) is 2.6 KB and takes about 100 ns, no longer than the
    // memory's latency. 8 KB ahead (4 tiles there, 1 for 4864 columns) made the 49152 x 576 output matrix 1.2-1.6x
    // faster from memory (kernel-ab, weights rotated over 48 MB) and changed nothing once rows are long.
    private const int PrefetchBytesAhead = 8192;

    public static void RunRows(in MatMulArgs args, int rowStart, int rowEnd)
    {
        Debug.Assert(args.Tokens == 1);
        nint tileBytes = 8 * args.WeightRowBytes;
        int ahead = 8 * (int)Math.Clamp((PrefetchBytesAhead + tileBytes - 1) / tileBytes, 1, 16);
        int row = rowStart;
        for (; row + 8 <= rowEnd; row += 8)
        {
            Tile(args, row, ahead);
        }
        if (row < rowEnd)
        {
            TileWalk.RunRows<Vector256Tiles<TFormat, TDot>>(args, row, rowEnd);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile(in MatMulArgs args, int row, int rowsAhead)
    {
        byte* w0 = args.WeightRow(row);
        byte* w4 = w0 + 4 * args.WeightRowBytes;
        nint stride = args.WeightRowBytes, stride3 = 3 * args.WeightRowBytes;
        byte* a = args.ActivationRow(0);
        TilePrefetch next = new(args, row + rowsAhead, 8);
        Vector256<byte> lowNibble = Vector256.Create((byte)0x0F);
        Vector256<float> sum = Vector256<float>.Zero;
        for (int b = 0; b < args.Blocks; b++, w0 += TFormat.BlockBytes, w4 += TFormat.BlockBytes, a += ActivationBlock.Bytes)
        {
            // (One row per vector took six horizontal adds and two permutes a tile, and ran at half the speed.)
            Vector256<sbyte> xLow = Avx2.BroadcastVector128ToVector256((sbyte*)(a + ActivationBlock.QuantsOffset));
            Vector256<sbyte> xHigh = Avx2.BroadcastVector128ToVector256((sbyte*)(a + ActivationBlock.QuantsOffset + 16));
            Vector256<int> d04 = PairDot(w0, w4, xLow, xHigh, lowNibble);
            Vector256<int> d15 = PairDot(w0 + stride, w4 + stride, xLow, xHigh, lowNibble);
            Vector256<int> d26 = PairDot(w0 + 2 * stride, w4 + 2 * stride, xLow, xHigh, lowNibble);
            Vector256<int> d37 = PairDot(w0 + stride3, w4 + stride3, xLow, xHigh, lowNibble);
            Vector256<int> sums = Avx2.HorizontalAdd(Avx2.HorizontalAdd(d04, d15), Avx2.HorizontalAdd(d26, d37));
            next.Block(b);
            if (TFormat.ActivationSumMultiplier256 != 0)
            {
                sums -= Vector256.Create(TFormat.ActivationSumMultiplier256 * *(int*)(a + ActivationBlock.SumOffset));
            }
            Vector256<float> scales = RowScales(w0, w4, stride, stride3) * *(float*)(a + ActivationBlock.ScaleOffset);
            sum = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(sums), scales, sum);
        }
        sum.Store(args.Output + row);
    }

    /// <summary>The blocks of two rows, one per 128-bit half, times the activations: 4 int lanes per row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> PairDot(byte* lowRow, byte* highRow, Vector256<sbyte> xLow, Vector256<sbyte> xHigh, Vector256<byte> lowNibble)
    {
        if (TFormat.BlockBytes == BlockQ4_0.Bytes)
        {
            // Byte j holds weights j (low nibble, meets xLow) and j + 16 (high nibble, meets xHigh).
            Vector256<byte> packed = Avx2.InsertVector128(Vector128.Load(lowRow + 2).ToVector256Unsafe(), Vector128.Load(highRow + 2), 1);
            Vector256<byte> low = packed & lowNibble, high = (packed.AsUInt16() >> 4).AsByte() & lowNibble;
            if (typeof(TDot) == typeof(AvxVnniDot))
            {
                return AvxVnni.MultiplyWideningAndAdd(AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, low, xLow), high, xHigh);
            }
            // PMADDUBSW pair sums of nibbles times activations are at most 2 · 15 · 127 = 3810: two add in 16 bits.
            Vector256<short> pairs = Avx2.MultiplyAddAdjacent(low, xLow) + Avx2.MultiplyAddAdjacent(high, xHigh);
            return Avx2.MultiplyAddAdjacent(pairs, Vector256<short>.One);
        }
        // Q8_0: |w| times the activations carrying w's sign.
        Vector256<sbyte> first = Avx2.InsertVector128(Vector128.Load((sbyte*)(lowRow + 2)).ToVector256Unsafe(), Vector128.Load((sbyte*)(highRow + 2)), 1);
        Vector256<sbyte> second = Avx2.InsertVector128(Vector128.Load((sbyte*)(lowRow + 18)).ToVector256Unsafe(), Vector128.Load((sbyte*)(highRow + 18)), 1);
        if (typeof(TDot) == typeof(AvxVnniDot))
        {
            return AvxVnni.MultiplyWideningAndAdd(AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, Avx2.Abs(first), Avx2.Sign(xLow, first)),
                Avx2.Abs(second), Avx2.Sign(xHigh, second));
        }
        return TDot.DotUnsigned(Avx2.Abs(first), Avx2.Sign(xLow, first)) + TDot.DotUnsigned(Avx2.Abs(second), Avx2.Sign(xHigh, second));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> RowScales(byte* w0, byte* w4, nint stride, nint stride3)
    {
        // PINSRW from memory, then one zero-extension: fewer instructions than eight loads into 32-bit lanes.
        Vector128<ushort> halves = Vector128.CreateScalarUnsafe(*(ushort*)w0);
        halves = Sse2.Insert(halves, *(ushort*)(w0 + stride), 1);
        halves = Sse2.Insert(halves, *(ushort*)(w0 + 2 * stride), 2);
        halves = Sse2.Insert(halves, *(ushort*)(w0 + stride3), 3);
        halves = Sse2.Insert(halves, *(ushort*)w4, 4);
        halves = Sse2.Insert(halves, *(ushort*)(w4 + stride), 5);
        halves = Sse2.Insert(halves, *(ushort*)(w4 + 2 * stride), 6);
        halves = Sse2.Insert(halves, *(ushort*)(w4 + stride3), 7);
        Vector256<uint> bits = Avx2.ConvertToVector256Int32(halves).AsUInt32();
        Vector256<float> magnitude = ((bits & Vector256.Create(0x7FFFu)) << 13).AsSingle() * Vector256.Create(Q8_0Weights.ScaleBitsMultiplier128);
        return (magnitude.AsUInt32() | ((bits & Vector256.Create(0x8000u)) << 16)).AsSingle();
    }
}

/// <summary>
/// The AVX-512 tier's kernel: <see cref="Vector256RowTiles8{TFormat, TDot}"/>'s schedule on 512-bit vectors, so a
/// tile is 16 rows (each 32-bit lane holds 4 consecutive weights of one row, [r0 .. r15]) × up to 16 tokens, and
/// one broadcast of a token's 4 activation bytes and one <c>VPMADDUBSW</c> serve 16 rows. Q8_0 is multiplied as
/// on AVX2, |w| times the activations carrying w's sign; AVX-512 has no <c>VPSIGNB</c>, so the sign is moved with
/// a byte mask (w &lt; 0) and a masked subtract from zero. Rows that do not fill a tile of 16, and single-token
/// products, go to the AVX2 kernels.
/// </summary>
internal static unsafe class Vector512RowTiles16<TFormat> where TFormat : struct, IWeightFormat
{
    private const int MaxTokens = 16;

    public static void RunRows(in MatMulArgs args, int rowStart, int rowEnd)
    {
        if (args.Tokens == 1 || args.WeightRowBytes > int.MaxValue / 16)
        {
            // A matrix-vector product has no tokens to share a transposed block. (Rows of over 128 MB would not
            // fit RowScales' 32-bit gather offsets.) VPDPBUSD on 256 bits beats PMADDUBSW on 512 here (no 512-bit
            // VPDPBUSD in .NET 10), so CPUs with AVX-VNNI take the VNNI kernel.
            if (AvxVnni.IsSupported)
            {
                Vector256RowTiles8<TFormat, AvxVnniDot>.RunRows(args, rowStart, rowEnd);
            }
            else
            {
                Vector256RowTiles8<TFormat, Avx2Dot>.RunRows(args, rowStart, rowEnd);
            }
            return;
        }
        int row = rowStart;
        for (; row + 16 <= rowEnd; row += 16)
        {
            for (int t = 0; t < args.Tokens; t += MaxTokens)
            {
                Tile(args, row, t, Math.Min(MaxTokens, args.Tokens - t));
            }
        }
        if (row < rowEnd)
        {
            Vector256RowTiles8<TFormat, Avx2Dot>.RunRows(args, row, rowEnd);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization), SkipLocalsInit]
    private static void Tile(in MatMulArgs args, int row, int firstToken, int tokens)
    {
        // 64-byte aligned (the stack is aligned to 16): a 64-byte vector must not split cache lines.
        byte* stack = stackalloc byte[(MaxTokens + 16) * 64 + 63];
        var sums = (Vector512<float>*)(((nint)stack + 63) & ~(nint)63);
        for (int i = 0; i < tokens; i++)
        {
            sums[i] = default;
        }
        // Q4_0: 8 planes of nibbles (vectors 0..3 meet activations 0..15, 4..7 meet 16..31). Q8_0: the 8 vectors of
        // signed weights, then their 8 magnitudes.
        var planes = (Vector512<byte>*)(sums + MaxTokens);
        byte* w0 = args.WeightRow(row);
        nint stride = args.WeightRowBytes;
        nint tokenBytes = (nint)args.Blocks * ActivationBlock.Bytes;
        byte* a = args.ActivationRow(firstToken);
        TilePrefetch next = new(args, row + 16, 16);
        Vector512<byte> lowNibble = Vector512.Create((byte)0x0F);
        Vector256<int> rowOffsets = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7) * (int)stride;
        for (int b = 0; b < args.Blocks; b++, w0 += TFormat.BlockBytes, a += ActivationBlock.Bytes)
        {
            if (TFormat.BlockBytes == BlockQ4_0.Bytes)
            {
                // Byte j holds weights j (low nibble) and j + 16 (high nibble), as in the 8-row kernel.
                Transpose(w0 + 2, stride, out Vector512<byte> g0, out Vector512<byte> g1, out Vector512<byte> g2, out Vector512<byte> g3);
                planes[0] = g0 & lowNibble; planes[4] = (g0.AsUInt16() >> 4).AsByte() & lowNibble;
                planes[1] = g1 & lowNibble; planes[5] = (g1.AsUInt16() >> 4).AsByte() & lowNibble;
                planes[2] = g2 & lowNibble; planes[6] = (g2.AsUInt16() >> 4).AsByte() & lowNibble;
                planes[3] = g3 & lowNibble; planes[7] = (g3.AsUInt16() >> 4).AsByte() & lowNibble;
            }
            else
            {
                Transpose(w0 + 2, stride, out planes[0], out planes[1], out planes[2], out planes[3]);
                Transpose(w0 + 18, stride, out planes[4], out planes[5], out planes[6], out planes[7]);
                for (int g = 0; g < 8; g++)
                {
                    // |-128| is 128 as an unsigned byte.
                    planes[8 + g] = Avx512BW.Abs(planes[g].AsSByte());
                }
            }
            Vector512<float> scales = RowScales(w0, stride, rowOffsets);
            next.Block(b);

            // Each format's groups are called from here, not through one Group that branches on the format: with
            // both behind one method the JIT's inline budget for Tile runs out and Products is called out of line.
            // Check the listing (jit-kernels, DOTNET_JitDisasm) for calls after changing these.
            int t = 0;
            if (TFormat.BlockBytes == BlockQ4_0.Bytes)
            {
                for (; t + 4 <= tokens; t += 4)
                {
                    Group<FourTokens>(planes, a + t * tokenBytes, tokenBytes, scales, sums + t);
                }
                switch (tokens - t)
                {
                    case 3: Group<ThreeTokens>(planes, a + t * tokenBytes, tokenBytes, scales, sums + t); break;
                    case 2: Group<TwoTokens>(planes, a + t * tokenBytes, tokenBytes, scales, sums + t); break;
                    case 1: Group<TwoTokens>(planes, a + t * tokenBytes, 0, scales, sums + t); break; // the token twice; sums[t + 1] is unused
                }
            }
            else
            {
                for (; t + 4 <= tokens; t += 4)
                {
                    GroupQ8<FourTokens>(planes, a + t * tokenBytes, tokenBytes, scales, sums + t);
                }
                switch (tokens - t)
                {
                    case 3: GroupQ8<ThreeTokens>(planes, a + t * tokenBytes, tokenBytes, scales, sums + t); break;
                    case 2: GroupQ8<TwoTokens>(planes, a + t * tokenBytes, tokenBytes, scales, sums + t); break;
                    case 1: GroupQ8<TwoTokens>(planes, a + t * tokenBytes, 0, scales, sums + t); break;
                }
            }
        }
        float* y = args.Output + (nint)firstToken * args.OutputStride + row;
        for (int i = 0; i < tokens; i++)
        {
            sums[i].Store(y + (nint)i * args.OutputStride);
        }
    }

    /// <summary>Q4_0: one block's products for 2 to 4 tokens (activation blocks <paramref name="tokenBytes"/> apart), added to their float sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Group<TTokens>(Vector512<byte>* planes, byte* a0, nint tokenBytes, Vector512<float> scales, Vector512<float>* sums)
        where TTokens : struct, ITokenCount
    {
        int tokens = TTokens.Count;
        byte* a1 = a0 + tokenBytes, a2 = a1 + tokenBytes, a3 = a2 + tokenBytes;
        // 16-bit sums of nibbles (0..15) times activations: at most 8 · 2 · 15 · 127 = 30480 in magnitude per block.
        Vector512<short> i0 = default, i1 = default, i2 = default, i3 = default;
        // Unrolled by hand: as a loop, the JIT spends 7 scalar instructions per vector of weights on the counter and offsets.
        Products<TTokens>(planes, 0, a0, a1, a2, a3, ref i0, ref i1, ref i2, ref i3);
        Products<TTokens>(planes, 1, a0, a1, a2, a3, ref i0, ref i1, ref i2, ref i3);
        Products<TTokens>(planes, 2, a0, a1, a2, a3, ref i0, ref i1, ref i2, ref i3);
        Products<TTokens>(planes, 3, a0, a1, a2, a3, ref i0, ref i1, ref i2, ref i3);
        Products<TTokens>(planes, 4, a0, a1, a2, a3, ref i0, ref i1, ref i2, ref i3);
        Products<TTokens>(planes, 5, a0, a1, a2, a3, ref i0, ref i1, ref i2, ref i3);
        Products<TTokens>(planes, 6, a0, a1, a2, a3, ref i0, ref i1, ref i2, ref i3);
        Products<TTokens>(planes, 7, a0, a1, a2, a3, ref i0, ref i1, ref i2, ref i3);
        Vector512<short> one = Vector512<short>.One;
        sums[0] = Accumulate(sums[0], Avx512BW.MultiplyAddAdjacent(i0, one), a0, scales);
        sums[1] = Accumulate(sums[1], Avx512BW.MultiplyAddAdjacent(i1, one), a1, scales);
        if (tokens > 2) sums[2] = Accumulate(sums[2], Avx512BW.MultiplyAddAdjacent(i2, one), a2, scales);
        if (tokens > 3) sums[3] = Accumulate(sums[3], Avx512BW.MultiplyAddAdjacent(i3, one), a3, scales);
    }

    /// <summary>Q4_0: plane <paramref name="g"/> times each token's activations 4g..4g+3, broadcast.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Products<TTokens>(Vector512<byte>* planes, int g, byte* a0, byte* a1, byte* a2, byte* a3,
        ref Vector512<short> i0, ref Vector512<short> i1, ref Vector512<short> i2, ref Vector512<short> i3)
        where TTokens : struct, ITokenCount
    {
        int tokens = TTokens.Count;
        int offset = ActivationBlock.QuantsOffset + 4 * g;
        Vector512<byte> nibbles = planes[g];
        i0 += Avx512BW.MultiplyAddAdjacent(nibbles, Vector512.Create(*(int*)(a0 + offset)).AsSByte());
        i1 += Avx512BW.MultiplyAddAdjacent(nibbles, Vector512.Create(*(int*)(a1 + offset)).AsSByte());
        if (tokens > 2) i2 += Avx512BW.MultiplyAddAdjacent(nibbles, Vector512.Create(*(int*)(a2 + offset)).AsSByte());
        if (tokens > 3) i3 += Avx512BW.MultiplyAddAdjacent(nibbles, Vector512.Create(*(int*)(a3 + offset)).AsSByte());
    }

    /// <summary>Q8_0: as <see cref="Group{TTokens}"/>, with 32-bit sums (a 16-bit pair sum |w|·a may reach 2 · 128 · 127 = 32512).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void GroupQ8<TTokens>(Vector512<byte>* planes, byte* a0, nint tokenBytes, Vector512<float> scales, Vector512<float>* sums)
        where TTokens : struct, ITokenCount
    {
        int tokens = TTokens.Count;
        byte* a1 = a0 + tokenBytes, a2 = a1 + tokenBytes, a3 = a2 + tokenBytes;
        Vector512<int> i0 = default, i1 = default, i2 = default, i3 = default;
        ProductsQ8<TTokens>(planes, 0, a0, a1, a2, a3, ref i0, ref i1, ref i2, ref i3);
        ProductsQ8<TTokens>(planes, 1, a0, a1, a2, a3, ref i0, ref i1, ref i2, ref i3);
        ProductsQ8<TTokens>(planes, 2, a0, a1, a2, a3, ref i0, ref i1, ref i2, ref i3);
        ProductsQ8<TTokens>(planes, 3, a0, a1, a2, a3, ref i0, ref i1, ref i2, ref i3);
        ProductsQ8<TTokens>(planes, 4, a0, a1, a2, a3, ref i0, ref i1, ref i2, ref i3);
        ProductsQ8<TTokens>(planes, 5, a0, a1, a2, a3, ref i0, ref i1, ref i2, ref i3);
        ProductsQ8<TTokens>(planes, 6, a0, a1, a2, a3, ref i0, ref i1, ref i2, ref i3);
        ProductsQ8<TTokens>(planes, 7, a0, a1, a2, a3, ref i0, ref i1, ref i2, ref i3);
        sums[0] = Accumulate(sums[0], i0, a0, scales);
        if (tokens > 1) sums[1] = Accumulate(sums[1], i1, a1, scales);
        if (tokens > 2) sums[2] = Accumulate(sums[2], i2, a2, scales);
        if (tokens > 3) sums[3] = Accumulate(sums[3], i3, a3, scales);
    }

    /// <summary>Q8_0: vector <paramref name="g"/> of the block (|w| in vector 8 + g) times each token's activations 4g..4g+3, broadcast.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ProductsQ8<TTokens>(Vector512<byte>* planes, int g, byte* a0, byte* a1, byte* a2, byte* a3,
        ref Vector512<int> i0, ref Vector512<int> i1, ref Vector512<int> i2, ref Vector512<int> i3)
        where TTokens : struct, ITokenCount
    {
        int tokens = TTokens.Count;
        int offset = ActivationBlock.QuantsOffset + 4 * g;
        // What VPSIGNB does on AVX2: the activations negated where w < 0 (a byte mask), then |w| times them.
        // Activations are in [-127, 127], so -x does not overflow, and a pair sum is at most 2 · 128 · 127 = 32512.
        Vector512<sbyte> signed = planes[g].AsSByte();
        Vector512<byte> magnitude = planes[8 + g];
        Vector512<short> one = Vector512<short>.One;
        Vector512<sbyte> x0 = Vector512.Create(*(int*)(a0 + offset)).AsSByte();
        Vector512<sbyte> x1 = Vector512.Create(*(int*)(a1 + offset)).AsSByte();
        i0 += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(magnitude, Vector512.ConditionalSelect(Vector512.LessThan(signed, Vector512<sbyte>.Zero), Vector512<sbyte>.Zero - x0, x0)), one);
        i1 += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(magnitude, Vector512.ConditionalSelect(Vector512.LessThan(signed, Vector512<sbyte>.Zero), Vector512<sbyte>.Zero - x1, x1)), one);
        if (tokens > 2)
        {
            Vector512<sbyte> x2 = Vector512.Create(*(int*)(a2 + offset)).AsSByte();
            i2 += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(magnitude, Vector512.ConditionalSelect(Vector512.LessThan(signed, Vector512<sbyte>.Zero), Vector512<sbyte>.Zero - x2, x2)), one);
        }
        if (tokens > 3)
        {
            Vector512<sbyte> x3 = Vector512.Create(*(int*)(a3 + offset)).AsSByte();
            i3 += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(magnitude, Vector512.ConditionalSelect(Vector512.LessThan(signed, Vector512<sbyte>.Zero), Vector512<sbyte>.Zero - x3, x3)), one);
        }
    }

    /// <summary>
    /// 16 bytes from each of 16 rows (at w0 + i·stride) as 4 vectors, vector g holding bytes 4g..4g+3 of row i in
    /// 32-bit lane i.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose(byte* w0, nint stride,
        out Vector512<byte> g0, out Vector512<byte> g1, out Vector512<byte> g2, out Vector512<byte> g3)
    {
        // [r0 | r4 | r8 | r12], [r1 | r5 | r9 | r13], ..., then a 4×4 transpose of 32-bit lanes within each 128-bit lane.
        nint stride4 = 4 * stride;
        Vector512<int> r0 = Rows4(w0, stride4), r1 = Rows4(w0 + stride, stride4), r2 = Rows4(w0 + 2 * stride, stride4), r3 = Rows4(w0 + 3 * stride, stride4);
        Vector512<int> low01 = Avx512F.UnpackLow(r0, r1), high01 = Avx512F.UnpackHigh(r0, r1);
        Vector512<int> low23 = Avx512F.UnpackLow(r2, r3), high23 = Avx512F.UnpackHigh(r2, r3);
        g0 = Avx512F.UnpackLow(low01.AsInt64(), low23.AsInt64()).AsByte();
        g1 = Avx512F.UnpackHigh(low01.AsInt64(), low23.AsInt64()).AsByte();
        g2 = Avx512F.UnpackLow(high01.AsInt64(), high23.AsInt64()).AsByte();
        g3 = Avx512F.UnpackHigh(high01.AsInt64(), high23.AsInt64()).AsByte();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Rows4(byte* w, nint stride4)
    {
        // Inserts rather than Vector512.Create(Vector256, Vector256), which the JIT builds through a stack slot.
        Vector256<byte> low = Avx2.InsertVector128(Vector128.Load(w).ToVector256Unsafe(), Vector128.Load(w + stride4), 1);
        Vector256<byte> high = Avx2.InsertVector128(Vector128.Load(w + 2 * stride4).ToVector256Unsafe(), Vector128.Load(w + 3 * stride4), 1);
        return Avx512F.InsertVector256(low.ToVector512Unsafe(), high, 1).AsInt32();
    }

    /// <summary>The 16 rows' fp16 block scales as floats (see <see cref="Fp16"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> RowScales(byte* w0, nint stride, Vector256<int> rowOffsets)
    {
        // Two 8-lane gathers of the 32 bits at each row's block (the scale in the low half) instead of 16 scalar
        // loads and inserts.
        Vector256<int> low = Avx2.GatherVector256((int*)w0, rowOffsets, 1);
        Vector256<int> high = Avx2.GatherVector256((int*)(w0 + 8 * stride), rowOffsets, 1);
        Vector512<uint> bits = Avx512F.InsertVector256(low.ToVector512Unsafe(), high, 1).AsUInt32();
        Vector512<float> magnitude = ((bits & Vector512.Create(0x7FFFu)) << 13).AsSingle() * Vector512.Create(Q8_0Weights.ScaleBitsMultiplier128);
        return (magnitude.AsUInt32() | ((bits & Vector512.Create(0x8000u)) << 16)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Accumulate(Vector512<float> sum, Vector512<int> sums, byte* a, Vector512<float> rowScales)
    {
        if (TFormat.ActivationSumMultiplier256 != 0)
        {
            sums -= Vector512.Create(TFormat.ActivationSumMultiplier256 * *(int*)(a + ActivationBlock.SumOffset));
        }
        return Vector512.MultiplyAddEstimate(Vector512.ConvertToSingle(sums), rowScales * *(float*)(a + ActivationBlock.ScaleOffset), sum);
    }
}
