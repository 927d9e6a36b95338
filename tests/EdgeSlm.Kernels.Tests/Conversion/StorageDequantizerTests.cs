using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EdgeSlm.Kernels.Conversion;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;

namespace EdgeSlm.Kernels.Tests.Conversion;

/// <summary>
/// The storage-only types' dequantizers against blocks computed by hand (bytes chosen so each element's value can be
/// worked out on paper; a few are spelled out as literals), and the load conversion against its error bounds.
/// </summary>
public class StorageDequantizerTests
{
    // A byte pattern whose nibbles differ: byte i holds i mod 16 low and 15 - (i mod 16) high.
    private static byte Ramp(int i) => (byte)((i % 16) | ((15 - i % 16) << 4));

    [Fact]
    public void Blocks_have_ggml_sizes()
    {
        // ggml-common.h: static_assert(sizeof(block_q5_0) == sizeof(ggml_half) + sizeof(uint32_t) + QK5_0 / 2), and so on.
        Assert.Equal(22, Unsafe.SizeOf<BlockQ5_0>());
        Assert.Equal(24, Unsafe.SizeOf<BlockQ5_1>());
        Assert.Equal(144, Unsafe.SizeOf<BlockQ4_K>());
        Assert.Equal(176, Unsafe.SizeOf<BlockQ5_K>());
        Assert.Equal(210, Unsafe.SizeOf<BlockQ6_K>());
        Assert.Equal(210, Marshal.SizeOf<BlockQ6_K>());
    }

    [Fact]
    public void Type_table_has_ggml_ids_and_sizes_and_the_conversion_targets()
    {
        (QuantType Type, int Id, string Name, int Elements, int Bytes, QuantType LoadAs)[] expected =
        [
            (QuantType.Q5_0, 6, "q5_0", 32, 22, QuantType.Q8_0),
            (QuantType.Q5_1, 7, "q5_1", 32, 24, QuantType.Q8_0),
            (QuantType.Q4_K, 12, "q4_k", 256, 144, QuantType.Q8_0),
            (QuantType.Q5_K, 13, "q5_k", 256, 176, QuantType.Q8_0),
            (QuantType.Q6_K, 14, "q6_k", 256, 210, QuantType.Q8_0),
            (QuantType.BF16, 30, "bf16", 1, 2, QuantType.F32),
        ];
        foreach (var e in expected)
        {
            QuantTypeTraits t = QuantTypeTraits.Of(e.Type);
            Assert.Equal((e.Id, e.Name, e.Elements, e.Bytes, e.LoadAs, false, false), ((int)t.Type, t.Name, t.BlockElements, t.BlockBytes, t.LoadAs, t.IsQuantized, t.IsNative));
        }
        foreach (QuantType native in new[] { QuantType.F32, QuantType.F16, QuantType.Q4_0, QuantType.Q8_0 })
        {
            Assert.True(QuantTypeTraits.Of(native).IsNative);
        }
        Assert.Equal(144 * 3, QuantTypeTraits.Of(QuantType.Q4_K).RowBytes(768));
        Assert.Throws<ArgumentException>(() => QuantTypeTraits.Of(QuantType.Q4_K).RowBytes(896)); // 3.5 super-blocks
        Assert.Throws<NotSupportedException>(() => QuantTypeTraits.Of(QuantType.Q4_K).Quantize(new float[256], new byte[144]));
    }

    [Fact]
    public void Q5_0_adds_the_fifth_bit_from_the_high_word_and_subtracts_16()
    {
        var block = new BlockQ5_0 { Scale = (Half)0.5f, HighBits = (1u << 0) | (1u << 17) };
        for (int j = 0; j < 16; j++) block.Quants[j] = Ramp(j);
        var y = new float[32];
        StorageDequantizer.DequantizeQ5_0([block], y);

        Assert.Equal([0f, -7.5f, -0.5f, -0.5f, 7f, -8f], new[] { y[0], y[1], y[15], y[16], y[17], y[31] });
        for (int i = 0; i < 32; i++)
        {
            int low = i < 16 ? i : 15 - (i - 16);
            int high = i is 0 or 17 ? 16 : 0;
            Assert.Equal((low + high - 16) * 0.5f, y[i]);
            Assert.Equal(low + high, block.Quant(i));
        }
    }

    [Fact]
    public void Q5_1_scales_the_quant_and_adds_the_minimum()
    {
        var block = new BlockQ5_1 { Scale = (Half)0.25f, Minimum = (Half)(-1f), HighBits = 0x8000_0001 };
        for (int j = 0; j < 16; j++) block.Quants[j] = Ramp(j);
        var y = new float[32];
        StorageDequantizer.DequantizeQ5_1([block], y);

        // 0: (0 + 16)·0.25 − 1; 1: 1·0.25 − 1; 16: 15·0.25 − 1; 31: (0 + 16)·0.25 − 1.
        Assert.Equal([3f, -0.75f, 2.75f, 3f], new[] { y[0], y[1], y[16], y[31] });
        for (int i = 0; i < 32; i++)
        {
            int low = i < 16 ? i : 15 - (i - 16);
            int high = i is 0 or 31 ? 16 : 0;
            Assert.Equal((low + high) * 0.25f - 1f, y[i]);
        }
    }

    // Sub-block scales 1, 2, 3, 4, 33, 34, 35, 36 and minimums 0, 1, 2, 3, 40, 41, 42, 63, packed by hand:
    // bytes 0-3 = scale 0-3 | (scale 4-7 >> 4) << 6, bytes 4-7 = min 0-3 | (min 4-7 >> 4) << 6,
    // bytes 8-11 = (scale 4-7 & 15) | (min 4-7 & 15) << 4.
    private static readonly byte[] PackedScales = [129, 130, 131, 132, 128, 129, 130, 195, 129, 146, 163, 244];
    private static readonly int[] SubScales = [1, 2, 3, 4, 33, 34, 35, 36];
    private static readonly int[] SubMinimums = [0, 1, 2, 3, 40, 41, 42, 63];

    [Fact]
    public void K_quant_scales_unpack_as_get_scale_min_k4()
    {
        KQuantScales scales = default;
        PackedScales.CopyTo((Span<byte>)scales);
        for (int j = 0; j < 8; j++)
        {
            Assert.Equal((SubScales[j], SubMinimums[j]), scales.Get(j));
        }
    }

    [Fact]
    public void Q4_K_takes_sub_blocks_2g_and_2g_plus_1_from_the_low_and_high_nibbles_of_32_bytes()
    {
        var block = new BlockQ4_K { Scale = (Half)0.5f, MinimumScale = (Half)0.25f };
        PackedScales.CopyTo((Span<byte>)block.Scales);
        for (int i = 0; i < 128; i++) block.Quants[i] = Ramp(i);
        var y = new float[256];
        StorageDequantizer.DequantizeQ4_K([block], y);

        // 0: 0.5·1·0 − 0; 1: 0.5·1·1; 32: 0.5·2·15 − 0.25·1; 224: 0.5·36·15 − 0.25·63; 255: 0 − 0.25·63.
        Assert.Equal([0f, 0.5f, 14.75f, 254.25f, -15.75f], new[] { y[0], y[1], y[32], y[224], y[255] });
        for (int i = 0; i < 256; i++)
        {
            int subBlock = i / 32, l = i % 32;
            byte packed = Ramp(32 * (subBlock / 2) + l);
            int q = subBlock % 2 == 0 ? packed & 15 : packed >> 4;
            Assert.Equal(0.5f * SubScales[subBlock] * q - 0.25f * SubMinimums[subBlock], y[i]);
        }
    }

    [Fact]
    public void Q5_K_takes_the_fifth_bit_of_sub_block_s_from_bit_s_of_qh()
    {
        var block = new BlockQ5_K { Scale = (Half)0.5f, MinimumScale = (Half)0.25f };
        PackedScales.CopyTo((Span<byte>)block.Scales);
        for (int i = 0; i < 128; i++) block.Quants[i] = Ramp(i);
        block.HighBits[0] = 0b11;   // elements 0 (sub-block 0) and 32 (sub-block 1)
        block.HighBits[31] = 0x80;  // element 31 of sub-block 7: element 255
        var y = new float[256];
        StorageDequantizer.DequantizeQ5_K([block], y);

        // 0: 0.5·1·16; 32: 0.5·2·31 − 0.25; 255: 0.5·36·16 − 0.25·63.
        Assert.Equal([8f, 30.75f, 272.25f], new[] { y[0], y[32], y[255] });
        for (int i = 0; i < 256; i++)
        {
            int subBlock = i / 32, l = i % 32;
            byte packed = Ramp(32 * (subBlock / 2) + l);
            int q = (subBlock % 2 == 0 ? packed & 15 : packed >> 4) + ((block.HighBits[l] >> subBlock) & 1) * 16;
            Assert.Equal(0.5f * SubScales[subBlock] * q - 0.25f * SubMinimums[subBlock], y[i]);
        }
    }

    [Fact]
    public void Q6_K_combines_low_nibbles_and_high_bit_pairs_with_signed_sub_block_scales()
    {
        var block = new BlockQ6_K { Scale = (Half)0.5f };
        for (int i = 0; i < 128; i++) block.Low[i] = Ramp(i);
        for (int i = 0; i < 64; i++) block.High[i] = 0b11_10_01_00; // pair k of every byte holds k
        for (int i = 0; i < 16; i++) block.Scales[i] = (sbyte)(i - 8);
        var y = new float[256];
        StorageDequantizer.DequantizeQ6_K([block], y);

        // 0: 0.5·(−8)·(0 − 32); 32: 0.5·(−6)·(16 − 32); 64: 0.5·(−4)·(47 − 32); 96: 0.5·(−2)·(63 − 32);
        // 128: scale 0; 255: 0.5·7·(48 − 32).
        Assert.Equal([128f, 48f, -30f, -31f, 0f, 56f], new[] { y[0], y[32], y[64], y[96], y[128], y[255] });
        for (int i = 0; i < 256; i++)
        {
            int half = i / 128, k = i % 128 / 32, l = i % 32; // element l of quarter k of a half
            byte low = Ramp(64 * half + l + (k % 2) * 32);
            int q = (k < 2 ? low & 15 : low >> 4) | (k << 4); // the high pair of quarter k is k here
            int scale = 8 * half + l / 16 + 2 * k - 8;
            Assert.Equal(0.5f * scale * (q - 32), y[i]);
        }
    }

    [Fact]
    public void Bf16_is_the_top_half_of_an_f32()
    {
        var y = new float[4];
        StorageDequantizer.DequantizeBF16([0x3F80, 0xC040, 0x0001, 0x7F80], y);
        Assert.Equal([1f, -3f, BitConverter.Int32BitsToSingle(0x10000), float.PositiveInfinity], y);
    }

    [Fact]
    public void Reference_dequantize_dispatches_the_storage_types_and_checks_lengths()
    {
        var block = new BlockQ5_0 { Scale = (Half)1f };
        var y = new float[32];
        ReferenceQuantizer.Dequantize(QuantType.Q5_0, MemoryMarshal.AsBytes(new[] { block }.AsSpan()), y);
        Assert.All(y, v => Assert.Equal(-16f, v));
        Assert.Throws<ArgumentException>(() => ReferenceQuantizer.Dequantize(QuantType.Q4_K, new byte[143], new float[256]));
        Assert.Throws<ArgumentException>(() => ReferenceQuantizer.Dequantize(QuantType.Q6_K, new byte[210], new float[128]));
    }

    [Fact]
    public void Q5_0_converts_to_q8_0_exactly()
    {
        byte[] bytes = RandomBytes<BlockQ5_0>(12, seed: 3, (ref BlockQ5_0 b, Random r) => b.Scale = (Half)(0.01f + r.NextSingle()));
        var (original, converted) = Convert(QuantType.Q5_0, bytes, 12 * 32);
        Assert.Equal(original, converted);
    }

    [Theory]
    [InlineData("q5_1")]
    [InlineData("q4_k")]
    [InlineData("q5_k")]
    [InlineData("q6_k")]
    public void Conversion_to_q8_0_errs_by_at_most_q8_0s_own_rounding(string typeName)
    {
        QuantType type = QuantTypeTraits.Parse(typeName).Type;
        const int Columns = 512;
        byte[] bytes = new byte[QuantTypeTraits.Of(type).RowBytes(Columns)];
        new Random(7).NextBytes(bytes);
        SetScales(type, bytes);
        var (original, converted) = Convert(type, bytes, Columns);
        double squaredError = 0, squaredValue = 0;
        for (int b = 0; b < Columns / 32; b++)
        {
            float absMax = 0;
            for (int j = 0; j < 32; j++) absMax = Math.Max(absMax, Math.Abs(original[32 * b + j]));
            // q8_0 rounds to a step d = fp16(max|x| / 127): half a step, plus 127 times d's own fp16 rounding.
            float bound = absMax / 127f * (0.5f + 127f / 2048f) * 1.001f;
            for (int j = 0; j < 32; j++)
            {
                float e = Math.Abs(original[32 * b + j] - converted[32 * b + j]);
                Assert.True(e <= bound, $"{typeName} element {32 * b + j}: {original[32 * b + j]} became {converted[32 * b + j]}");
                squaredError += e * e;
                squaredValue += original[32 * b + j] * original[32 * b + j];
            }
        }
        Assert.True(squaredError / squaredValue < 1e-4, $"relative squared error {squaredError / squaredValue}");
    }

    [Fact]
    public void Bf16_converts_to_f32_exactly()
    {
        ushort[] bits = [0x3F80, 0xC2F7, 0x0080, 0x0001, 0x8000];
        var (original, converted) = Convert(QuantType.BF16, MemoryMarshal.AsBytes(bits.AsSpan()).ToArray(), bits.Length);
        Assert.Equal(original, converted);
    }

    [Theory]
    [InlineData("q5_0", 0x7E00)] // a NaN scale
    [InlineData("q4_k", 0x7C00)] // an infinite super-block scale
    [InlineData("q6_k", 0x7C00)]
    [InlineData("q6_k", 0x7BFF)] // 65504 · 127 · 32: finite floats, but a q8_0 scale beyond fp16's range
    public void Rows_with_non_finite_values_or_scales_are_refused(string typeName, int scaleBits)
    {
        QuantType type = QuantTypeTraits.Parse(typeName).Type;
        QuantTypeTraits traits = QuantTypeTraits.Of(type);
        byte[] bytes = new byte[traits.RowBytes(256)];
        new Random(1).NextBytes(bytes);
        SetScales(type, bytes);
        int offset = type == QuantType.Q6_K ? 208 : 0;
        BitConverter.TryWriteBytes(bytes.AsSpan(offset, 2), (ushort)scaleBits);
        if (scaleBits == 0x7BFF)
        {
            bytes.AsSpan(192, 16).Fill(127);
        }
        var destination = new byte[LoadConversion.ConvertedRowBytes(type, 256)];
        Assert.False(LoadConversion.TryConvertRow(type, bytes, destination, new float[256]));
    }

    [Fact]
    public void Native_types_and_wrong_sizes_are_refused()
    {
        Assert.Throws<ArgumentException>(() => LoadConversion.TryConvertRow(QuantType.Q4_0, new byte[18], new byte[18], new float[32]));
        Assert.Throws<ArgumentException>(() => LoadConversion.TryConvertRow(QuantType.Q4_K, new byte[144], new byte[34 * 7], new float[256]));
    }

    /// <summary>Finite, moderate scales in every block of a random row (the rest of the bytes stay random).</summary>
    private static void SetScales(QuantType type, byte[] bytes)
    {
        QuantTypeTraits traits = QuantTypeTraits.Of(type);
        var random = new Random(11);
        for (int offset = 0; offset < bytes.Length; offset += traits.BlockBytes)
        {
            Span<byte> block = bytes.AsSpan(offset, traits.BlockBytes);
            Half d = (Half)(0.001f + 0.01f * random.NextSingle());
            switch (type)
            {
                case QuantType.Q6_K: BitConverter.TryWriteBytes(block[208..], d); break;
                case QuantType.Q5_1 or QuantType.Q4_K or QuantType.Q5_K:
                    BitConverter.TryWriteBytes(block, d);
                    BitConverter.TryWriteBytes(block[2..], (Half)(0.5f * (float)d));
                    break;
                default: BitConverter.TryWriteBytes(block, d); break;
            }
        }
    }

    private delegate void BlockSetter<TBlock>(ref TBlock block, Random random);

    private static byte[] RandomBytes<TBlock>(int blocks, int seed, BlockSetter<TBlock> set) where TBlock : struct
    {
        var random = new Random(seed);
        var bytes = new byte[blocks * Unsafe.SizeOf<TBlock>()];
        random.NextBytes(bytes);
        Span<TBlock> span = MemoryMarshal.Cast<byte, TBlock>(bytes.AsSpan());
        for (int b = 0; b < span.Length; b++) set(ref span[b], random);
        return bytes;
    }

    /// <summary>The row's values before and after conversion, both as floats.</summary>
    private static (float[] Original, float[] Converted) Convert(QuantType type, byte[] row, int columns)
    {
        var original = new float[columns];
        ReferenceQuantizer.Dequantize(type, row, original);
        QuantType target = QuantTypeTraits.Of(type).LoadAs;
        var destination = new byte[LoadConversion.ConvertedRowBytes(type, columns)];
        Assert.True(LoadConversion.TryConvertRow(type, row, destination, new float[columns]));
        var converted = new float[columns];
        ReferenceQuantizer.Dequantize(target, destination, converted);
        return (original, converted);
    }
}
