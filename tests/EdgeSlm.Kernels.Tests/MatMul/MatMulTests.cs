using System.Runtime.InteropServices;
using EdgeSlm.Kernels.Dispatch;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.MatMul;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Kernels.Tests.Quantization;
using EdgeSlm.Testing;

namespace EdgeSlm.Kernels.Tests.MatMul;

public unsafe class MatMulTests
{
    public static TheoryData<KernelPath, QuantType> PathsAndTypes => KernelTestCases.PathsAndTypes();

    // rows, k, tokens: 1 row, 1 token, ragged row tiles (rows % 4 != 0), token tails of 1 to 3, MiniLM's shapes.
    private static readonly (int Rows, int K, int Tokens)[] Shapes =
    [
        (1, 32, 1), (1, 64, 2), (3, 96, 1), (4, 32, 4), (5, 160, 3), (7, 224, 5), (8, 64, 6), (9, 32, 7),
        (13, 416, 9), (17, 96, 16), (64, 384, 1), (384, 384, 2), (37, 1536, 11), (1536, 384, 1), (96, 384, 64),
        // 16-row tiles (avx512) with 8- and 4-row tails, and token counts past one 16-token tile.
        (31, 64, 3), (48, 96, 17), (45, 160, 13),
        // Single tokens over 8-row tiles (the decoder's matrix-vector products) with 4-row and ragged tails.
        (24, 96, 1), (45, 160, 1), (896, 128, 1),
    ];

    [Theory]
    [MemberData(nameof(PathsAndTypes))]
    public void MatMul_with_unit_scales_equals_the_exact_integer_products(KernelPath path, QuantType type)
    {
        foreach ((int rows, int k, int tokens) in Shapes)
        {
            int blocks = k / 32;
            byte[] weights = KernelTestCases.UnitScaleWeights(type, rows, blocks, seed: rows * 31 + k);
            // Activations with block maxima of exactly 127 quantize to scale 1 and the integers themselves.
            float[] x = new float[tokens * k];
            var random = new Random(tokens * 17 + k);
            for (int i = 0; i < x.Length; i++) x[i] = random.Next(-127, 128);
            for (int b = 0; b < tokens * blocks; b++) x[b * 32 + random.Next(32)] = random.Next(2) == 0 ? 127 : -127;

            AssertExactProducts(path, type, weights, rows, k, x, tokens);
        }
    }

    [Theory]
    [MemberData(nameof(PathsAndTypes))]
    public void MatMul_with_extreme_values_equals_the_exact_integer_products(KernelPath path, QuantType type)
    {
        // The largest magnitudes of both operands, where 16-bit partial sums come closest to overflowing: Q8_0
        // weights -128 and 127, Q4_0 nibbles 0 and 15 (weights -8 and 7), activations of ±127, in runs of one sign.
        foreach ((int rows, int k, int tokens) in new[] { (16, 64, 2), (48, 256, 10), (37, 96, 5), (16, 64, 1), (45, 256, 1) })
        {
            int blocks = k / 32, blockBytes = QuantTypeTraits.Of(type).BlockBytes;
            byte[] weights = KernelTestCases.UnitScaleWeights(type, rows, blocks, seed: rows);
            var random = new Random(rows * 7 + k);
            for (int b = 0; b < rows * blocks; b++)
            {
                int pattern = random.Next(3);
                for (int j = 2; j < blockBytes; j++)
                {
                    bool high = pattern == 0 || (pattern == 2 && j % 2 == 0);
                    weights[b * blockBytes + j] = type == QuantType.Q4_0 ? (byte)(high ? 0xFF : 0x00) : (byte)(high ? 0x7F : 0x80);
                }
            }
            float[] x = new float[tokens * k];
            for (int i = 0; i < x.Length; i++) x[i] = (i / 32 + i / 4) % 3 == 0 ? -127 : 127;
            AssertExactProducts(path, type, weights, rows, k, x, tokens);
        }
    }

    [Theory]
    [MemberData(nameof(PathsAndTypes))]
    public void MatMul_with_weights_and_activations_of_mixed_signs_and_zeros_equals_the_exact_integer_products(KernelPath path, QuantType type)
    {
        // Kernels that move w's sign onto the activations (a byte mask, or VPSIGNB) must leave a product with w = 0 at
        // zero and flip each byte on its own: every byte independently from the sign and magnitude edges, zero included.
        sbyte[] q8Weights = [-128, -127, -1, 0, 1, 127];
        byte[] q4Nibbles = [0, 7, 8, 9, 15];
        int[] activationValues = [-127, -1, 0, 1, 127];
        foreach ((int rows, int k, int tokens) in new[] { (16, 64, 4), (32, 128, 7), (48, 96, 3), (21, 64, 2) })
        {
            int blocks = k / 32, blockBytes = QuantTypeTraits.Of(type).BlockBytes;
            byte[] weights = KernelTestCases.UnitScaleWeights(type, rows, blocks, seed: rows + k);
            var random = new Random(rows * 13 + k);
            for (int b = 0; b < rows * blocks; b++)
            {
                for (int j = 2; j < blockBytes; j++)
                {
                    weights[b * blockBytes + j] = type == QuantType.Q4_0
                        ? (byte)(q4Nibbles[random.Next(q4Nibbles.Length)] | q4Nibbles[random.Next(q4Nibbles.Length)] << 4)
                        : (byte)q8Weights[random.Next(q8Weights.Length)];
                }
            }
            float[] x = new float[tokens * k];
            for (int i = 0; i < x.Length; i++) x[i] = activationValues[random.Next(activationValues.Length)];
            for (int b = 0; b < tokens * blocks; b++) x[b * 32 + random.Next(32)] = random.Next(2) == 0 ? 127 : -127;
            AssertExactProducts(path, type, weights, rows, k, x, tokens);
        }
    }

    /// <summary>Checks that y = W·x exactly, for weights with unit scales and integer activations whose block maxima are 127.</summary>
    private static void AssertExactProducts(KernelPath path, QuantType type, byte[] weights, int rows, int k, float[] x, int tokens)
    {
        int blocks = k / 32;
        using var matrix = QuantizedMatrix.Copy(type, weights, rows, k);
        float[] actual = Multiply(path, matrix, x, tokens, threads: 1);
        long rowBytes = QuantTypeTraits.Of(type).RowBytes(k);
        for (int t = 0; t < tokens; t++)
        {
            var activations = new BlockQ8_0[blocks];
            for (int b = 0; b < blocks; b++)
            {
                activations[b].Scale = (Half)1f;
                for (int j = 0; j < 32; j++) activations[b].Quants[j] = (sbyte)x[t * k + b * 32 + j];
            }
            for (int r = 0; r < rows; r++)
            {
                long expected = KernelTestCases.ExactDot(type, weights.AsSpan((int)(r * rowBytes), (int)rowBytes), activations);
                Assert.True(expected == actual[t * rows + r], $"{rows}x{k}, {tokens} tokens: y[{t},{r}] = {actual[t * rows + r]}, exact {expected}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(PathsAndTypes))]
    public void MatMul_equals_the_reference_within_float_tolerance_on_every_shape_and_thread_count(KernelPath path, QuantType type)
    {
        foreach ((int rows, int k, int tokens) in Shapes)
        {
            float[] w = TestData.Mixed(rows * k, seed: rows + k);
            float[] x = TestData.Gaussian(tokens * k, seed: tokens + k, scale: 3f);
            using var matrix = QuantizedMatrix.Quantize(type, w, rows, k);
            float[] expected = Multiply(KernelPath.Reference, matrix, x, tokens, threads: 1);
            float[] dequantizedX = DequantizedActivations(x, k);
            long rowBytes = matrix.RowBytes;

            foreach (int threads in new[] { 1, 2, 3 })
            {
                float[] actual = Multiply(path, matrix, x, tokens, threads);
                for (int t = 0; t < tokens; t++)
                {
                    for (int r = 0; r < rows; r++)
                    {
                        double scale = KernelTestCases.AbsoluteDot(type, matrix.Bytes.Slice((int)(r * rowBytes), (int)rowBytes), dequantizedX.AsSpan(t * k, k));
                        double tolerance = KernelTestCases.FloatTolerance * scale + 1e-30;
                        float e = expected[t * rows + r], a = actual[t * rows + r];
                        Assert.True(Math.Abs(e - a) <= tolerance, $"{rows}x{k}, {tokens} tokens, {threads} threads: y[{t},{r}] reference {e}, {path} {a}");
                    }
                }
            }
        }
    }

    [Fact]
    public void Reference_matmul_is_the_dequantized_product_of_the_quantized_operands()
    {
        // Ties the reference to plain float maths: y = deq(W) · deq(Q8_0(x)) up to float rounding.
        const int rows = 9, k = 96, tokens = 3;
        float[] w = TestData.Gaussian(rows * k, seed: 1);
        float[] x = TestData.Gaussian(tokens * k, seed: 2);
        using var matrix = QuantizedMatrix.Quantize(QuantType.Q4_0, w, rows, k);
        float[] y = Multiply(KernelPath.Reference, matrix, x, tokens, threads: 1);
        var dequantizedW = new float[rows * k];
        QuantTypeTraits.Of(QuantType.Q4_0).Dequantize(matrix.Bytes, dequantizedW);
        float[] dequantizedX = DequantizedActivations(x, k);
        for (int t = 0; t < tokens; t++)
        {
            for (int r = 0; r < rows; r++)
            {
                double sum = 0, abs = 0;
                for (int i = 0; i < k; i++)
                {
                    sum += (double)dequantizedW[r * k + i] * dequantizedX[t * k + i];
                    abs += Math.Abs((double)dequantizedW[r * k + i] * dequantizedX[t * k + i]);
                }
                Assert.True(Math.Abs(sum - y[t * rows + r]) <= 1e-6 * abs, $"y[{t},{r}] = {y[t * rows + r]}, float maths {sum}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(PathsAndTypes))]
    public void MatMul_writes_only_its_output(KernelPath path, QuantType type)
    {
        const int rows = 7, k = 64, tokens = 5, guard = 16;
        using var matrix = QuantizedMatrix.Quantize(type, TestData.Gaussian(rows * k, 1), rows, k);
        float[] x = TestData.Gaussian(tokens * k, 2);
        var buffer = new float[guard + tokens * rows + guard];
        buffer.AsSpan().Fill(float.NaN);
        using var matMul = new QuantMatMul(threads: 2, path);
        matMul.Multiply(matrix, x, tokens, buffer.AsSpan(guard, tokens * rows));
        Assert.All(buffer[..guard], v => Assert.True(float.IsNaN(v)));
        Assert.All(buffer[^guard..], v => Assert.True(float.IsNaN(v)));
        Assert.All(buffer[guard..^guard], v => Assert.False(float.IsNaN(v)));
    }

    [Fact]
    public void MatMul_rejects_mismatched_shapes_with_messages_that_name_them()
    {
        using var matrix = QuantizedMatrix.Quantize(QuantType.Q4_0, new float[4 * 64], 4, 64);
        using var matMul = new QuantMatMul();
        var e1 = Assert.Throws<ArgumentException>(() => matMul.Multiply(matrix, new float[63], 1, new float[4]));
        Assert.Contains("64", e1.Message);
        var e2 = Assert.Throws<ArgumentException>(() => matMul.Multiply(matrix, new float[128], 2, new float[4]));
        Assert.Contains("8", e2.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => matMul.Multiply(matrix, new float[0], 0, new float[0]));
        Assert.Throws<ArgumentException>(() => QuantizedMatrix.Quantize(QuantType.Q4_0, new float[4 * 48], 4, 48));
        Assert.Throws<NotSupportedException>(() => QuantizedMatrix.Quantize(QuantType.F32, new float[4 * 32], 4, 32));
    }

    internal static float[] Multiply(KernelPath path, QuantizedMatrix matrix, float[] x, int tokens, int threads)
    {
        using var matMul = new QuantMatMul(threads, path);
        var y = new float[tokens * matrix.Rows];
        matMul.Multiply(matrix, x, tokens, y);
        return y;
    }

    /// <summary>x as the kernels see it: quantized to Q8_0 by the activation quantizer and back.</summary>
    private static float[] DequantizedActivations(float[] x, int k)
    {
        (byte[] blocks, _, _) = QuantizerTests.QuantizeActivations(ActivationQuantizer.QuantizeReference, x);
        var result = new float[x.Length];
        ReferenceQuantizer.DequantizeQ8_0(MemoryMarshal.Cast<byte, BlockQ8_0>(blocks), result);
        return result;
    }
}

[Collection(AllocationCollection.Name)]
public sealed class MatMulAllocationTests
{
    [Fact]
    public void MatMul_allocates_nothing_after_the_first_call()
    {
        using var matrix = QuantizedMatrix.Quantize(QuantType.Q4_0, TestData.Gaussian(384 * 384, 1), 384, 384);
        float[] x = TestData.Gaussian(16 * 384, 2);
        var y = new float[16 * 384];
        using var matMul = new QuantMatMul(threads: 2);
        matMul.Multiply(matrix, x, 16, y);
        matMul.Multiply(matrix, x.AsSpan(0, 384), 1, y.AsSpan(0, 384));

        // The driver's work (quantizing, dispatching, waiting) is on this thread; the worker only runs kernels.
        // A process-wide count would also see the test host's own threads.
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 20; i++)
        {
            matMul.Multiply(matrix, x, 16, y);
            matMul.Multiply(matrix, x.AsSpan(0, 384), 1, y.AsSpan(0, 384));
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
