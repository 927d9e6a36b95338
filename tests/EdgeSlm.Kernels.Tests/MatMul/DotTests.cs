using System.Runtime.InteropServices;
using EdgeSlm.Kernels.Dispatch;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.MatMul;
using EdgeSlm.Kernels.Quantization;

namespace EdgeSlm.Kernels.Tests.MatMul;

public class DotTests
{
    public static TheoryData<KernelPath, QuantType> PathsAndTypes => KernelTestCases.PathsAndTypes();

    private static readonly int[] BlockCounts = [0, 1, 2, 3, 5, 7, 12, 13, 48, 129];

    [Theory]
    [MemberData(nameof(PathsAndTypes))]
    public void Dot_with_unit_scales_equals_the_exact_integer_sum(KernelPath path, QuantType type)
    {
        foreach (int blocks in BlockCounts)
        {
            foreach (bool extremes in new[] { false, true })
            {
                byte[] weights = KernelTestCases.UnitScaleWeights(type, 1, blocks, seed: blocks * 3 + 1);
                if (extremes && type == QuantType.Q8_0)
                {
                    // The largest magnitudes the formats hold: weights -128 (a file may contain it) and 127.
                    for (int b = 0; b < blocks; b++)
                        for (int j = 0; j < 32; j++)
                            weights[b * 34 + 2 + j] = (byte)(j % 2 == 0 ? 0x80 : 0x7F);
                }
                BlockQ8_0[] activations = KernelTestCases.UnitScaleActivations(blocks, seed: blocks * 7 + 2, extremes);
                long expected = KernelTestCases.ExactDot(type, weights, activations);

                Assert.Equal((float)expected, Dot(type, weights, activations, KernelPath.Reference));
                Assert.Equal((float)expected, Dot(type, weights, activations, path));
            }
        }
    }

    [Theory]
    [MemberData(nameof(PathsAndTypes))]
    public void Dot_equals_the_reference_within_float_tolerance(KernelPath path, QuantType type)
    {
        foreach (int blocks in BlockCounts)
        {
            float[] w = TestData.Mixed(blocks * 32, seed: blocks + 11);
            float[] x = TestData.Mixed(blocks * 32, seed: blocks + 12);
            byte[] weights = new byte[QuantTypeTraits.Of(type).RowBytes(w.Length)];
            ReferenceQuantizer.Quantize(type, w, weights);
            var activations = new BlockQ8_0[blocks];
            ReferenceQuantizer.QuantizeQ8_0(x, activations);
            var dequantizedX = new float[x.Length];
            ReferenceQuantizer.DequantizeQ8_0(activations, dequantizedX);

            float expected = Dot(type, weights, activations, KernelPath.Reference);
            float actual = Dot(type, weights, activations, path);
            double tolerance = KernelTestCases.FloatTolerance * KernelTestCases.AbsoluteDot(type, weights, dequantizedX) + 1e-30;
            Assert.True(Math.Abs(expected - actual) <= tolerance, $"{blocks} blocks: reference {expected}, {path} {actual}, tolerance {tolerance}");
        }
    }

    [Theory]
    [InlineData(QuantType.Q4_0, 0.15)]
    [InlineData(QuantType.Q8_0, 0.02)]
    public void Quantized_dot_is_close_to_the_float_dot(QuantType type, double relativeError)
    {
        // Relative L2 error over many dot products of unit Gaussians (k = 384, MiniLM's width): Q4_0 weights
        // lose about 9%, Q8_0 about 0.7% (both with Q8_0 activations).
        const int k = 384, rows = 256;
        float[] x = TestData.Gaussian(k, seed: 3);
        var activations = new BlockQ8_0[k / 32];
        ReferenceQuantizer.QuantizeQ8_0(x, activations);
        double errorSquares = 0, valueSquares = 0;
        for (int r = 0; r < rows; r++)
        {
            float[] w = TestData.Gaussian(k, seed: 1000 + r);
            byte[] weights = new byte[QuantTypeTraits.Of(type).RowBytes(k)];
            ReferenceQuantizer.Quantize(type, w, weights);
            double exact = 0;
            for (int i = 0; i < k; i++) exact += (double)w[i] * x[i];
            double quantized = Dot(type, weights, activations, KernelPaths.Fastest);
            errorSquares += (quantized - exact) * (quantized - exact);
            valueSquares += exact * exact;
        }
        Assert.InRange(Math.Sqrt(errorSquares / valueSquares), 0.0001, relativeError);
    }

    [Fact]
    public void Dot_rejects_rows_of_different_lengths()
    {
        Assert.Throws<ArgumentException>(() => QuantDot.Dot(new BlockQ4_0[2], new BlockQ8_0[3], KernelPath.Reference));
    }

    private static float Dot(QuantType type, byte[] weights, BlockQ8_0[] activations, KernelPath path) => type == QuantType.Q4_0
        ? QuantDot.Dot(MemoryMarshal.Cast<byte, BlockQ4_0>(weights), activations, path)
        : QuantDot.Dot(MemoryMarshal.Cast<byte, BlockQ8_0>(weights), activations, path);
}
