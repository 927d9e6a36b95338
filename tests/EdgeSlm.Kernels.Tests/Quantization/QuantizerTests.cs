using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;

namespace EdgeSlm.Kernels.Tests.Quantization;

public unsafe class QuantizerTests
{
    // Round-to-nearest leaves at most half a step per element; Q4_0 also clamps +8 steps to +7 (one full step).
    // The fp16 scale is itself rounded, by at most Fp16RoundingError(d), and that error is multiplied by the
    // quant (at most 8 or 128 in magnitude).
    private static double Q4_0ElementError(double d) => Math.Abs(d) + 9 * Fp16RoundingError(d);
    private static double Q8_0ElementError(double d) => 0.5 * Math.Abs(d) + 128.5 * Fp16RoundingError(d);

    /// <summary>Half an fp16 ulp at d: 2^-11 relative for normal halves, 2^-25 absolute for subnormal ones.</summary>
    private static double Fp16RoundingError(double d) => Math.Max(Math.Abs(d) * Math.Pow(2, -11), Math.Pow(2, -25));

    // ggml's test-quantize-fns bounds the RMS error of 4-bit types on its synthetic data at 0.002; on unit
    // Gaussians the RMS error of Q4_0 is about 0.085 (uniform error over a step of about max/8).
    private const double Q4_0RmsErrorOnUnitGaussian = 0.1;
    private const double Q8_0RmsErrorOnUnitGaussian = 0.006;

    public static TheoryData<int> Lengths => new() { 0, 32, 64, 96, 256, 384, 1536 };

    [Theory]
    [MemberData(nameof(Lengths))]
    public void Q4_0_round_trip_stays_within_a_step_per_element(int length)
    {
        float[] x = TestData.Mixed(length, seed: length + 1);
        var blocks = new BlockQ4_0[length / 32];
        ReferenceQuantizer.QuantizeQ4_0(x, blocks);
        var y = new float[length];
        ReferenceQuantizer.DequantizeQ4_0(blocks, y);
        for (int i = 0; i < length; i++)
        {
            double step = (float)blocks[i / 32].Scale;
            Assert.True(Math.Abs(x[i] - y[i]) <= Q4_0ElementError(step), $"element {i}: {x[i]} -> {y[i]} (step {step})");
        }
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void Q8_0_round_trip_stays_within_half_a_step_per_element(int length)
    {
        float[] x = TestData.Mixed(length, seed: length + 2);
        var blocks = new BlockQ8_0[length / 32];
        ReferenceQuantizer.QuantizeQ8_0(x, blocks);
        var y = new float[length];
        ReferenceQuantizer.DequantizeQ8_0(blocks, y);
        for (int i = 0; i < length; i++)
        {
            double step = (float)blocks[i / 32].Scale;
            Assert.True(Math.Abs(x[i] - y[i]) <= Q8_0ElementError(step), $"element {i}: {x[i]} -> {y[i]} (step {step})");
        }
    }

    [Fact]
    public void Round_trip_rms_error_on_gaussian_data_is_within_bounds()
    {
        float[] x = TestData.Gaussian(32 * 1024, seed: 7);
        Assert.InRange(RoundTripRms(QuantType.Q4_0, x), 0.01, Q4_0RmsErrorOnUnitGaussian);
        Assert.InRange(RoundTripRms(QuantType.Q8_0, x), 0.0001, Q8_0RmsErrorOnUnitGaussian);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(40)]
    public void Q8_0_vector128_tier_equals_the_reference_byte_for_byte(int blocks)
    {
        var random = new Random(blocks);
        var values = new float[blocks * 32];
        for (int i = 0; i < values.Length; i++) values[i] = (random.NextSingle() - 0.5f) * MathF.Pow(10, random.Next(-3, 3));
        // Exact ties for roundf: a block whose maximum is 127 (d = 1, inverse 1) holding ±k.5, and a zero block.
        if (blocks > 1)
        {
            for (int j = 0; j < 32; j++) values[j] = j == 0 ? 127f : (j % 2 == 0 ? 1 : -1) * (j + 0.5f);
            Array.Clear(values, 32, 32);
        }
        var expected = new BlockQ8_0[blocks];
        var actual = new BlockQ8_0[blocks];
        ReferenceQuantizer.QuantizeQ8_0(values, expected);
        ReferenceQuantizer.QuantizeQ8_0Vector128(values, actual);
        Assert.Equal(MemoryMarshal.AsBytes(expected.AsSpan()).ToArray(), MemoryMarshal.AsBytes(actual.AsSpan()).ToArray());
        if (blocks > 1)
        {
            Assert.Equal(3, actual[0].Quants[2]);   // 2.5 rounds away from zero to 3, not to even 2
            Assert.Equal(-4, actual[0].Quants[3]);  // -3.5 to -4
        }
    }

    [Fact]
    public void All_zero_block_quantizes_to_zero_scale_and_midpoint_quants()
    {
        var q4 = new BlockQ4_0[1];
        ReferenceQuantizer.QuantizeQ4_0(new float[32], q4);
        Assert.Equal((Half)0f, q4[0].Scale);
        for (int j = 0; j < 16; j++) Assert.Equal(0x88, q4[0].Quants[j]);

        var q8 = new BlockQ8_0[1];
        ReferenceQuantizer.QuantizeQ8_0(new float[32], q8);
        Assert.Equal((Half)0f, q8[0].Scale);
        for (int j = 0; j < 32; j++) Assert.Equal(0, q8[0].Quants[j]);
    }

    [Fact]
    public void Quantizers_reject_partial_blocks_and_wrong_buffers()
    {
        Assert.Throws<ArgumentException>(() => ReferenceQuantizer.Quantize(QuantType.Q4_0, new float[33], new byte[36]));
        Assert.Throws<ArgumentException>(() => ReferenceQuantizer.Quantize(QuantType.Q8_0, new float[64], new byte[67]));
        Assert.Throws<ArgumentException>(() => ReferenceQuantizer.QuantizeQ4_0(new float[64], new BlockQ4_0[1]));
    }

    /// <summary>The activation quantizer's tiers this CPU runs besides the reference.</summary>
    private static IEnumerable<string> ActivationTiers =>
        Avx512F.IsSupported ? ["vector128", "vector256", "avx512"] : ["vector128", "vector256"];

    private static ActivationQuantizer.Tier ActivationTier(string tier) => tier switch
    {
        "vector128" => ActivationQuantizer.QuantizeVector128,
        "vector256" => ActivationQuantizer.QuantizeVector256,
        "avx512" => ActivationQuantizer.QuantizeAvx512,
        _ => throw new ArgumentOutOfRangeException(nameof(tier), tier, null),
    };

    public static TheoryData<string, int> ActivationCases()
    {
        var data = new TheoryData<string, int>();
        foreach (string tier in ActivationTiers)
        {
            // 16, 17, 31, 33, 97: the avx512 tier's groups of 16 blocks, full and partial.
            foreach (int blocks in new[] { 0, 1, 2, 3, 5, 12, 15, 16, 17, 31, 33, 48, 97 })
            {
                data.Add(tier, blocks);
            }
        }
        return data;
    }

    public static TheoryData<string> ActivationTierNames()
    {
        var data = new TheoryData<string>();
        foreach (string tier in ActivationTiers)
        {
            data.Add(tier);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(ActivationCases))]
    public void Activation_quantizer_tiers_are_bit_identical_to_the_reference(string tier, int blocks)
    {
        // Vector256 runs in software where it is not accelerated (ARM64): still exact, so it is checked there too.
        float[] x = TestData.Mixed(blocks * 32, seed: 100 + blocks);
        AssertActivationTierMatchesReference(ActivationTier(tier), x);
    }

    [Theory]
    [MemberData(nameof(ActivationTierNames))]
    public void Activation_quantizer_tiers_are_bit_identical_to_the_reference_on_extreme_blocks(string tier)
    {
        float[] x = ExtremeActivationBlocks();
        AssertActivationTierMatchesReference(ActivationTier(tier), x);
        // And from every block offset, so that each extreme block takes every lane of a 16-block group.
        for (int skip = 1; skip < 16; skip++)
        {
            AssertActivationTierMatchesReference(ActivationTier(tier), x[(skip * 32)..]);
        }
    }

    [Fact]
    public void Activation_blocks_too_small_for_a_multiplier_get_zero_quants_and_scale()
    {
        float[] x = new float[64];
        x[3] = 1e-38f;                   // 127 / 1e-38 overflows
        x[40] = -float.Epsilon;          // the smallest subnormal
        (byte[] bytes, float[] scales, int[] sums) = QuantizeActivations(ActivationQuantizer.QuantizeReference, x);
        Assert.Equal([0f, 0f], scales);
        Assert.Equal([0, 0], sums);
        Assert.All(bytes, b => Assert.Equal(0, b)); // fp16 scales and quants
    }

    /// <summary>
    /// Blocks at the edges of the format: zeros, ±0, subnormals, ±float.MaxValue, maxima whose scale lands on fp16
    /// rounding ties, its subnormal range, its largest value and just past it, and one large value among tiny ones.
    /// </summary>
    private static float[] ExtremeActivationBlocks()
    {
        var random = new Random(7);
        var blocks = new List<float[]>();
        float[] Block(Func<int, float> value) => Enumerable.Range(0, 32).Select(value).ToArray();
        float Noise() => (float)(random.NextDouble() * 2 - 1);
        blocks.Add(new float[32]);
        blocks.Add(Block(j => j % 2 == 0 ? 0f : -0f));
        blocks.Add(Block(j => float.Epsilon * (j - 16)));
        blocks.Add(Block(j => j == 5 ? 1e-38f : 0f));
        blocks.Add(Block(j => j == 9 ? 3.8e-37f : -1e-38f * Noise()));
        blocks.Add(Block(j => j == 0 ? float.MaxValue : Noise() * 1e38f));
        blocks.Add(Block(j => j == 31 ? -float.MaxValue : float.MaxValue * Noise()));
        blocks.Add(Block(j => (j % 3 - 1) * float.MaxValue));
        blocks.Add(Block(j => j == 7 ? 1000f : Noise() * 1e-30f));
        blocks.Add(Block(j => j == 7 ? -1f : 1f / (j + 2)));
        // max|x| / 127 on fp16's largest value, the tie above it, just below and above the tie.
        foreach (float scale in new[] { 65504f, 65520f, 65519.996f, 65520.004f, 65536f })
        {
            blocks.Add(Block(j => j == 11 ? scale * 127f : Noise() * scale));
        }
        // Scales on fp16 rounding ties (odd and even significands), and in its subnormal range.
        foreach (float scale in new[] { 1f + 1f / 2048, 1f + 3f / 2048, 1024f + 0.5f, 1f / 16384, 1f / 16384 * (1 - 1f / 4096), 3f / 33554432, 5f / 33554432, 1f / 33554432, 1f / 67108864 })
        {
            blocks.Add(Block(j => j == 20 ? -scale * 127f : Noise() * scale * 127f));
        }
        for (int b = 0; b < 20; b++)
        {
            float magnitude = MathF.Pow(2, random.Next(-149, 128));
            blocks.Add(Block(j => Noise() * magnitude));
        }
        return blocks.SelectMany(b => b).ToArray();
    }

    private static void AssertActivationTierMatchesReference(ActivationQuantizer.Tier tier, float[] x)
    {
        (byte[] expected, float[] expectedScales, int[] expectedSums) = QuantizeActivations(ActivationQuantizer.QuantizeReference, x);
        (byte[] actual, float[] actualScales, int[] actualSums) = QuantizeActivations(tier, x);
        Assert.Equal(expected, actual);
        Assert.Equal(expectedScales, actualScales);
        Assert.Equal(expectedSums, actualSums);
    }

    [Fact]
    public void Activation_quants_stay_within_plus_minus_127_and_match_their_scales()
    {
        float[] x = TestData.Mixed(32 * 64, seed: 5);
        (byte[] bytes, float[] scales, int[] sums) = QuantizeActivations(ActivationQuantizer.QuantizeVector128, x);
        ReadOnlySpan<BlockQ8_0> blocks = MemoryMarshal.Cast<byte, BlockQ8_0>(bytes);
        for (int b = 0; b < blocks.Length; b++)
        {
            Assert.Equal((float)blocks[b].Scale, scales[b]);
            int sum = 0;
            for (int j = 0; j < 32; j++)
            {
                Assert.InRange((int)blocks[b].Quants[j], -127, 127);
                sum += blocks[b].Quants[j];
            }
            Assert.Equal(sum, sums[b]);
        }
        // And the quantized values are close to the input: within half a step and the fp16 rounding of the scale.
        var y = new float[x.Length];
        ReferenceQuantizer.DequantizeQ8_0(blocks, y);
        for (int i = 0; i < x.Length; i++)
        {
            Assert.True(Math.Abs(x[i] - y[i]) <= Q8_0ElementError(scales[i / 32]), $"element {i}: {x[i]} -> {y[i]}");
        }
    }

    /// <summary>
    /// Runs a quantizer tier and returns its blocks as GGUF Q8_0 blocks, with each block's float scale and sum
    /// as the kernels read them. A guard block past the end must stay untouched.
    /// </summary>
    internal static (byte[] Blocks, float[] Scales, int[] Sums) QuantizeActivations(ActivationQuantizer.Tier tier, float[] x)
    {
        int blocks = x.Length / 32;
        var kernelBlocks = new byte[(blocks + 1) * ActivationBlock.Bytes];
        kernelBlocks.AsSpan(blocks * ActivationBlock.Bytes).Fill(0xA5);
        fixed (float* source = x)
        fixed (byte* destination = kernelBlocks)
        {
            tier(source, blocks, destination);
        }
        Assert.All(kernelBlocks[(blocks * ActivationBlock.Bytes)..], b => Assert.Equal(0xA5, b));

        var q8 = new byte[blocks * BlockQ8_0.Bytes];
        var scales = new float[blocks];
        var sums = new int[blocks];
        for (int b = 0; b < blocks; b++)
        {
            ReadOnlySpan<byte> block = kernelBlocks.AsSpan(b * ActivationBlock.Bytes, ActivationBlock.Bytes);
            scales[b] = BitConverter.ToSingle(block[ActivationBlock.ScaleOffset..]);
            sums[b] = BitConverter.ToInt32(block[ActivationBlock.SumOffset..]);
            // The scale is an fp16 value widened: converting back is exact, and gives the Q8_0 block.
            Assert.Equal(scales[b], (float)(Half)scales[b]);
            BitConverter.TryWriteBytes(q8.AsSpan(b * BlockQ8_0.Bytes), (Half)scales[b]);
            block.Slice(ActivationBlock.QuantsOffset, 32).CopyTo(q8.AsSpan(b * BlockQ8_0.Bytes + 2));
        }
        return (q8, scales, sums);
    }

    private static double RoundTripRms(QuantType type, float[] x)
    {
        QuantTypeTraits traits = QuantTypeTraits.Of(type);
        var bytes = new byte[traits.RowBytes(x.Length)];
        traits.Quantize(x, bytes);
        var y = new float[x.Length];
        traits.Dequantize(bytes, y);
        double sum = 0;
        for (int i = 0; i < x.Length; i++) sum += (x[i] - y[i]) * (double)(x[i] - y[i]);
        return Math.Sqrt(sum / x.Length);
    }
}
