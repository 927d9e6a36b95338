using EdgeSlm.Kernels.Attention;
using static EdgeSlm.Kernels.Tests.FiniteDifferences;

namespace EdgeSlm.Kernels.Tests.Attention;

public sealed class TrainingAttentionTests
{
    /// <summary>Float softmax and sums over a handful of tokens against double: largest error over largest gradient element.</summary>
    private const double GradientTolerance = 1e-4;

    public static TheoryData<int, int, int, int> Shapes => new()
    {
        // tokens, heads, head size, padding keys at the end
        { 1, 1, 4, 0 },
        { 5, 2, 3, 0 },
        { 6, 3, 4, 2 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Attention_backward_equals_central_differences_in_double_with_padding_masked(int tokens, int heads, int headSize, int padding)
    {
        int size = tokens * heads * headSize;
        float[] q = TestData.Gaussian(size, seed: 40 + tokens), k = TestData.Gaussian(size, seed: 41 + tokens), v = TestData.Gaussian(size, seed: 42 + tokens);
        float[] c = TestData.Gaussian(size, seed: 43);
        bool[] valid = Enumerable.Range(0, tokens).Select(j => j < tokens - padding).ToArray();
        // The loss reads only real queries, as a loss over a padded batch does.
        for (int i = tokens - padding; i < tokens; i++) Array.Clear(c, i * heads * headSize, heads * headSize);
        double[] cd = ToDouble(c), qd = ToDouble(q), kd = ToDouble(k), vd = ToDouble(v);

        var probabilities = new float[heads * tokens * tokens];
        var context = new float[size];
        TrainingAttention.Forward(q, k, v, tokens, heads, headSize, valid, probabilities, context);
        double[] expected = Forward(qd, kd, vd, tokens, heads, headSize, valid);
        for (int i = 0; i < size; i++) Assert.True(Math.Abs(context[i] - expected[i]) <= 1e-5, $"context[{i}] = {context[i]}, double {expected[i]}");

        float[] dq = new float[size], dk = new float[size], dv = new float[size];
        TrainingAttention.Backward(c, q, k, v, tokens, heads, headSize, valid, probabilities, dq, dk, dv, new float[tokens]);
        Assert.True(RelativeError(dq, Gradient(x => Dot(cd, Forward(x, kd, vd, tokens, heads, headSize, valid)), qd)) <= GradientTolerance, "dq");
        Assert.True(RelativeError(dk, Gradient(x => Dot(cd, Forward(qd, x, vd, tokens, heads, headSize, valid)), kd)) <= GradientTolerance, "dk");
        Assert.True(RelativeError(dv, Gradient(x => Dot(cd, Forward(qd, kd, x, tokens, heads, headSize, valid)), vd)) <= GradientTolerance, "dv");
        for (int j = tokens - padding; j < tokens; j++)
        {
            for (int d = 0; d < heads * headSize; d++)
            {
                Assert.Equal(0f, dk[j * heads * headSize + d]);
                Assert.Equal(0f, dv[j * heads * headSize + d]);
            }
        }
    }

    [Fact]
    public void Attention_refuses_a_sequence_without_a_valid_key() =>
        Assert.Throws<ArgumentException>(() => TrainingAttention.Forward(new float[4], new float[4], new float[4], 2, 1, 2, [false, false], new float[4], new float[4]));

    private static double[] Forward(double[] q, double[] k, double[] v, int tokens, int heads, int headSize, bool[] valid)
    {
        int width = heads * headSize;
        var context = new double[tokens * width];
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < tokens; i++)
            {
                var scores = new double[tokens];
                for (int j = 0; j < tokens; j++)
                {
                    double dot = 0;
                    for (int d = 0; d < headSize; d++) dot += q[i * width + h * headSize + d] * k[j * width + h * headSize + d];
                    scores[j] = valid[j] ? dot / Math.Sqrt(headSize) : double.NegativeInfinity;
                }
                double max = scores.Max(), sum = 0;
                for (int j = 0; j < tokens; j++) sum += scores[j] = Math.Exp(scores[j] - max);
                for (int j = 0; j < tokens; j++)
                    for (int d = 0; d < headSize; d++) context[i * width + h * headSize + d] += scores[j] / sum * v[j * width + h * headSize + d];
            }
        return context;
    }
}
