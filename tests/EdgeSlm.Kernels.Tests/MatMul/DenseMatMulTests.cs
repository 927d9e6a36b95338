using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.MatMul;

namespace EdgeSlm.Kernels.Tests.MatMul;

public sealed unsafe class DenseMatMulTests
{
    private const float SumTolerance = 2e-5f;

    [Theory]
    [InlineData(QuantType.F32, 1, 1, 1)]
    [InlineData(QuantType.F32, 37, 33, 1)]
    [InlineData(QuantType.F32, 64, 256, 5)]
    [InlineData(QuantType.F16, 1, 3, 1)]
    [InlineData(QuantType.F16, 37, 33, 3)]
    [InlineData(QuantType.F16, 100, 255, 2)]
    public unsafe void Dense_products_equal_the_reference_on_one_and_two_threads(QuantType type, int rows, int columns, int tokens)
    {
        float[] w = TestData.Gaussian(rows * columns, seed: rows, scale: 0.5f);
        byte[] bytes = type == QuantType.F32
            ? System.Runtime.InteropServices.MemoryMarshal.AsBytes(w.AsSpan()).ToArray()
            : System.Runtime.InteropServices.MemoryMarshal.AsBytes(w.Select(v => (Half)v).ToArray().AsSpan()).ToArray();
        float[] x = TestData.Gaussian(tokens * columns, seed: columns);
        float[] rounded = (float[])x.Clone();
        if (type == QuantType.F16)
        {
            DenseMatMul.RoundToHalf(x, rounded);
        }
        var expected = new float[tokens * rows];
        fixed (byte* wp = bytes)
        fixed (float* xp = rounded)
        fixed (float* yp = expected)
        {
            DenseMatMul.RowsReference(type, wp, columns, xp, tokens, yp, rows, 0, rows);
        }
        foreach (int threads in new[] { 1, 2 })
        {
            using var pool = new QuantMatMul(threads);
            var dense = new DenseMatMul(pool);
            var actual = new float[tokens * rows];
            fixed (byte* wp = bytes)
            {
                dense.Multiply(type, wp, rows, columns, x, tokens, actual);
            }
            for (int i = 0; i < expected.Length; i++)
            {
                Assert.True(Math.Abs(expected[i] - actual[i]) <= SumTolerance * (1 + Math.Sqrt(columns)), $"{threads} threads, {i}: {expected[i]} vs {actual[i]}");
            }
        }
    }
}
