using EdgeSlm.Kernels.Float;
using static EdgeSlm.Kernels.Tests.FiniteDifferences;

namespace EdgeSlm.Kernels.Tests.Float;

public sealed class DenseLinearTests
{
    /// <summary>Float sums of up to 40 products against double: largest error over largest gradient element.</summary>
    private const double GradientTolerance = 1e-5;
    /// <summary>The vector tier sums in another order than the reference.</summary>
    private const float TierTolerance = 1e-5f;

    [Theory]
    [InlineData(1, 3, 5)]
    [InlineData(4, 7, 9)]
    [InlineData(3, 40, 33)]
    public void Linear_backward_equals_central_differences_in_double_for_input_weight_and_bias(int tokens, int rows, int columns)
    {
        float[] x = TestData.Gaussian(tokens * columns, seed: tokens + 20);
        float[] weight = TestData.Gaussian(rows * columns, seed: rows + 21);
        float[] bias = TestData.Gaussian(rows, seed: columns + 22);
        float[] c = TestData.Gaussian(tokens * rows, seed: 23);
        double[] cd = ToDouble(c), xd = ToDouble(x), wd = ToDouble(weight), bd = ToDouble(bias);

        var dx = new float[tokens * columns];
        var dWeight = new float[rows * columns];
        var dBias = new float[rows];
        DenseLinear.Backward(c, x, tokens, weight, dx, dWeight, dBias);

        Assert.True(RelativeError(dx, Gradient(v => Dot(cd, Forward(v, wd, bd, tokens)), xd)) <= GradientTolerance, "dx");
        Assert.True(RelativeError(dWeight, Gradient(v => Dot(cd, Forward(xd, v, bd, tokens)), wd)) <= GradientTolerance, "dW");
        Assert.True(RelativeError(dBias, Gradient(v => Dot(cd, Forward(xd, wd, v, tokens)), bd)) <= GradientTolerance, "db");
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(5, 17, 31)]
    [InlineData(9, 64, 384)]
    public void Linear_vector_tier_equals_the_reference_forward_and_backward(int tokens, int rows, int columns)
    {
        float[] x = TestData.Gaussian(tokens * columns, seed: 30);
        float[] weight = TestData.Gaussian(rows * columns, seed: 31);
        float[] bias = TestData.Gaussian(rows, seed: 32);
        float[] dy = TestData.Gaussian(tokens * rows, seed: 33);
        float[] y = new float[tokens * rows], yReference = new float[tokens * rows];
        DenseLinear.Forward(x, tokens, weight, bias, y);
        DenseLinear.ForwardReference(x, tokens, weight, bias, yReference);
        AssertClose(yReference, y, columns);

        float[] dx = new float[tokens * columns], dxReference = new float[tokens * columns];
        float[] dWeight = Enumerable.Repeat(0.5f, rows * columns).ToArray(), dWeightReference = (float[])dWeight.Clone();
        float[] dBias = new float[rows], dBiasReference = new float[rows];
        DenseLinear.Backward(dy, x, tokens, weight, dx, dWeight, dBias);
        DenseLinear.BackwardReference(dy, x, tokens, weight, dxReference, dWeightReference, dBiasReference);
        AssertClose(dxReference, dx, rows);
        AssertClose(dWeightReference, dWeight, tokens);
        AssertClose(dBiasReference, dBias, tokens);
    }

    [Fact]
    public void Linear_backward_without_an_input_gradient_still_fills_the_weight_gradient()
    {
        var dWeight = new float[6];
        DenseLinear.Backward([1f, 2f], [3f, 4f, 5f], 1, new float[6], [], dWeight, new float[2]);
        Assert.Equal([3f, 4f, 5f, 6f, 8f, 10f], dWeight);
    }

    private static void AssertClose(float[] expected, float[] actual, int terms)
    {
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= TierTolerance * Math.Sqrt(terms) * Math.Max(1, Math.Abs(expected[i])), $"[{i}] {actual[i]} vs reference {expected[i]}");
        }
    }

    private static double[] Forward(double[] x, double[] weight, double[] bias, int tokens)
    {
        int rows = bias.Length, columns = weight.Length / rows;
        var y = new double[tokens * rows];
        for (int t = 0; t < tokens; t++)
            for (int r = 0; r < rows; r++)
            {
                double sum = bias[r];
                for (int k = 0; k < columns; k++) sum += x[t * columns + k] * weight[r * columns + k];
                y[t * rows + r] = sum;
            }
        return y;
    }
}
