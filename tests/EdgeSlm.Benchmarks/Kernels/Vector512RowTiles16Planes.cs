using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.MatMul;
using EdgeSlm.Kernels.Quantization;

namespace EdgeSlm.Benchmarks.Kernels;

// The avx512 tile kernel as it was before Q8_0 took the sign trick (Q8_0 as two nibble planes of w + 128), kept
// here so that kernel-ab can compare the two in one process: KERNEL_AB_KERNELS=avx512-planes,avx512.
// The AVX-512 tier's kernel: <see cref="Vector256RowTiles8{TFormat, TDot}"/>'s schedule on 512-bit vectors, so a
// tile is 16 rows (each 32-bit lane holds 4 consecutive weights of one row, [r0 .. r15]) × up to 16 tokens, and
// one broadcast of a token's 4 activation bytes and one <c>VPMADDUBSW</c> serve 16 rows. AVX-512 has no
// <c>VPSIGNB</c>, so Q8_0 weights are not split into magnitude and sign as on AVX2: they are offset to unsigned
// bytes u = w + 128 and split into nibbles, Σ w·a = 16·Σ hi·a + Σ lo·a − 128·Σa, which makes Q8_0 two Q4_0-like
// products (every 16-bit sum bounded as for Q4_0, so both are added in 16 bits and widened once per block). Rows
// that do not fill a tile of 16, and single-token products, go to the AVX2 kernels.
internal static unsafe class Vector512RowTiles16Planes<TFormat> where TFormat : struct, IWeightFormat
{
    private const int MaxTokens = 16;

    // Q4_0: 8 planes of nibbles (vectors 0..3 meet activations 0..15, 4..7 meet 16..31). Q8_0: 8 low-nibble planes
    // of w + 128, then 8 high-nibble planes.
    private static int Planes => TFormat.BlockBytes == BlockQ4_0.Bytes ? 8 : 16;

    public static void RunRows(in MatMulArgs args, int rowStart, int rowEnd)
    {
        if (args.Tokens == 1 || args.WeightRowBytes > int.MaxValue / 16)
        {
            // A matrix-vector product has no tokens to share a transposed block. (Rows of over 128 MB would not
            // fit RowScales' 32-bit gather offsets.)
            Vector256RowTiles8<TFormat, Avx2Dot>.RunRows(args, rowStart, rowEnd);
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
                Vector512<byte> offset = Vector512.Create((byte)0x80);
                Transpose(w0 + 2, stride, out Vector512<byte> g0, out Vector512<byte> g1, out Vector512<byte> g2, out Vector512<byte> g3);
                Transpose(w0 + 18, stride, out Vector512<byte> g4, out Vector512<byte> g5, out Vector512<byte> g6, out Vector512<byte> g7);
                SplitQ8(planes, 0, g0 ^ offset, lowNibble);
                SplitQ8(planes, 1, g1 ^ offset, lowNibble);
                SplitQ8(planes, 2, g2 ^ offset, lowNibble);
                SplitQ8(planes, 3, g3 ^ offset, lowNibble);
                SplitQ8(planes, 4, g4 ^ offset, lowNibble);
                SplitQ8(planes, 5, g5 ^ offset, lowNibble);
                SplitQ8(planes, 6, g6 ^ offset, lowNibble);
                SplitQ8(planes, 7, g7 ^ offset, lowNibble);
            }
            Vector512<float> scales = RowScales(w0, stride, rowOffsets);
            next.Block(b);

            int t = 0;
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
        float* y = args.Output + (nint)firstToken * args.OutputStride + row;
        for (int i = 0; i < tokens; i++)
        {
            sums[i].Store(y + (nint)i * args.OutputStride);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SplitQ8(Vector512<byte>* planes, int g, Vector512<byte> unsigned, Vector512<byte> lowNibble)
    {
        planes[g] = unsigned & lowNibble;
        planes[8 + g] = (unsigned.AsUInt16() >> 4).AsByte() & lowNibble;
    }

    /// <summary>One block's products for 2 to 4 tokens (activation blocks <paramref name="tokenBytes"/> apart), added to their float sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Group<TTokens>(Vector512<byte>* planes, byte* a0, nint tokenBytes, Vector512<float> scales, Vector512<float>* sums)
        where TTokens : struct, ITokenCount
    {
        int tokens = TTokens.Count;
        byte* a1 = a0 + tokenBytes, a2 = a1 + tokenBytes, a3 = a2 + tokenBytes;
        // 16-bit sums of nibbles (0..15) times activations: at most 8 · 2 · 15 · 127 = 30480 in magnitude per block.
        Vector512<short> l0 = default, l1 = default, l2 = default, l3 = default;
        Vector512<short> h0 = default, h1 = default, h2 = default, h3 = default;
        // Unrolled by hand: as a loop, the JIT spends 7 scalar instructions per vector of weights on the counter and offsets.
        Products<TTokens>(planes, 0, a0, a1, a2, a3, ref l0, ref l1, ref l2, ref l3, ref h0, ref h1, ref h2, ref h3);
        Products<TTokens>(planes, 1, a0, a1, a2, a3, ref l0, ref l1, ref l2, ref l3, ref h0, ref h1, ref h2, ref h3);
        Products<TTokens>(planes, 2, a0, a1, a2, a3, ref l0, ref l1, ref l2, ref l3, ref h0, ref h1, ref h2, ref h3);
        Products<TTokens>(planes, 3, a0, a1, a2, a3, ref l0, ref l1, ref l2, ref l3, ref h0, ref h1, ref h2, ref h3);
        Products<TTokens>(planes, 4, a0, a1, a2, a3, ref l0, ref l1, ref l2, ref l3, ref h0, ref h1, ref h2, ref h3);
        Products<TTokens>(planes, 5, a0, a1, a2, a3, ref l0, ref l1, ref l2, ref l3, ref h0, ref h1, ref h2, ref h3);
        Products<TTokens>(planes, 6, a0, a1, a2, a3, ref l0, ref l1, ref l2, ref l3, ref h0, ref h1, ref h2, ref h3);
        Products<TTokens>(planes, 7, a0, a1, a2, a3, ref l0, ref l1, ref l2, ref l3, ref h0, ref h1, ref h2, ref h3);
        sums[0] = Accumulate(sums[0], l0, h0, a0, scales);
        sums[1] = Accumulate(sums[1], l1, h1, a1, scales);
        if (tokens > 2) sums[2] = Accumulate(sums[2], l2, h2, a2, scales);
        if (tokens > 3) sums[3] = Accumulate(sums[3], l3, h3, a3, scales);
    }

    /// <summary>Plane <paramref name="g"/> (and for Q8_0 its high-nibble plane) times each token's activations 4g..4g+3, broadcast.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Products<TTokens>(Vector512<byte>* planes, int g, byte* a0, byte* a1, byte* a2, byte* a3,
        ref Vector512<short> l0, ref Vector512<short> l1, ref Vector512<short> l2, ref Vector512<short> l3,
        ref Vector512<short> h0, ref Vector512<short> h1, ref Vector512<short> h2, ref Vector512<short> h3)
        where TTokens : struct, ITokenCount
    {
        int tokens = TTokens.Count;
        int offset = ActivationBlock.QuantsOffset + 4 * g;
        Vector512<byte> low = planes[g];
        Vector512<sbyte> x0 = Vector512.Create(*(int*)(a0 + offset)).AsSByte();
        Vector512<sbyte> x1 = Vector512.Create(*(int*)(a1 + offset)).AsSByte();
        l0 += Avx512BW.MultiplyAddAdjacent(low, x0);
        l1 += Avx512BW.MultiplyAddAdjacent(low, x1);
        if (TFormat.BlockBytes != BlockQ4_0.Bytes)
        {
            Vector512<byte> high = planes[8 + g];
            h0 += Avx512BW.MultiplyAddAdjacent(high, x0);
            h1 += Avx512BW.MultiplyAddAdjacent(high, x1);
        }
        if (tokens > 2)
        {
            Vector512<sbyte> x2 = Vector512.Create(*(int*)(a2 + offset)).AsSByte();
            l2 += Avx512BW.MultiplyAddAdjacent(low, x2);
            if (TFormat.BlockBytes != BlockQ4_0.Bytes) h2 += Avx512BW.MultiplyAddAdjacent(planes[8 + g], x2);
        }
        if (tokens > 3)
        {
            Vector512<sbyte> x3 = Vector512.Create(*(int*)(a3 + offset)).AsSByte();
            l3 += Avx512BW.MultiplyAddAdjacent(low, x3);
            if (TFormat.BlockBytes != BlockQ4_0.Bytes) h3 += Avx512BW.MultiplyAddAdjacent(planes[8 + g], x3);
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
    private static Vector512<float> Accumulate(Vector512<float> sum, Vector512<short> low, Vector512<short> high, byte* a, Vector512<float> rowScales)
    {
        Vector512<int> sums;
        int activationSum = *(int*)(a + ActivationBlock.SumOffset);
        if (TFormat.BlockBytes == BlockQ4_0.Bytes)
        {
            sums = Avx512BW.MultiplyAddAdjacent(low, Vector512<short>.One) - Vector512.Create(8 * activationSum);
        }
        else
        {
            sums = Avx512BW.MultiplyAddAdjacent(high, Vector512.Create((short)16)) + Avx512BW.MultiplyAddAdjacent(low, Vector512<short>.One)
                - Vector512.Create(128 * activationSum);
        }
        return Vector512.MultiplyAddEstimate(Vector512.ConvertToSingle(sums), rowScales * *(float*)(a + ActivationBlock.ScaleOffset), sum);
    }
}
