using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Bert.Training;

namespace EdgeSlm.Models.Tests.Bert.Training;

/// <summary>The whole encoder's backward pass against central finite differences of a plain double forward, on tiny random models.</summary>
public sealed class TrainableEncoderGradientTests
{
    /// <summary>
    /// The float forward and backward against double through two layers: the largest element error over the largest
    /// gradient element of each tensor, or over <see cref="GradientFloor"/> where that is smaller.
    /// </summary>
    private const double GradientTolerance = 2e-3;

    /// <summary>The key bias's gradient is zero in exact arithmetic (softmax ignores a shift common to a row): float noise there is measured against this.</summary>
    private const double GradientFloor = 1e-4;

    private static BertConfig Tiny(Pooling pooling) => new(VocabularySize: 13, HiddenSize: 8, LayerCount: 2, HeadCount: 2, FeedForwardSize: 16,
        ContextLength: 8, TokenTypeCount: 2, LayerNormEpsilon: 1e-5f, Pooling: pooling);

    [Theory]
    [InlineData(Pooling.Mean, false)]
    [InlineData(Pooling.Mean, true)]
    [InlineData(Pooling.Cls, true)]
    public void Encoder_backward_equals_central_differences_in_double_for_every_parameter(Pooling pooling, bool tokenLoss)
    {
        BertConfig config = Tiny(pooling);
        BertParameters parameters = BertParameters.Random(config, seed: 7);
        int[] tokens = [1, 5, 3, 7, 5, 2];
        int n = tokens.Length, hidden = config.HiddenSize;
        var random = new Random(8);
        double[] c = Enumerable.Range(0, hidden).Select(_ => random.NextDouble() * 2 - 1).ToArray();
        double[] d = Enumerable.Range(0, n * hidden).Select(_ => tokenLoss ? random.NextDouble() * 2 - 1 : 0).ToArray();

        var encoder = new TrainableEncoder(parameters);
        var activations = new TrainingActivations(config, capacity: 8);
        float[] embedding = encoder.Forward(tokens, activations).ToArray();
        var gradients = new BertParameters(config);
        encoder.Backward(activations, c.Select(v => (float)v).ToArray(), tokenLoss ? d.Select(v => (float)v).ToArray() : [], gradients);

        Dictionary<string, double[]> weights = parameters.Tensors.ToDictionary(t => t.Name, t => t.Values.Select(v => (double)v).ToArray());
        (double[] expectedEmbedding, _) = DoubleForward(config, weights, tokens);
        for (int i = 0; i < hidden; i++) Assert.True(Math.Abs(embedding[i] - expectedEmbedding[i]) <= 1e-5, $"embedding[{i}] {embedding[i]} vs double {expectedEmbedding[i]}");

        double Loss()
        {
            (double[] e, double[] states) = DoubleForward(config, weights, tokens);
            double sum = 0;
            for (int i = 0; i < hidden; i++) sum += c[i] * e[i];
            for (int i = 0; i < states.Length; i++) sum += d[i] * states[i];
            return sum;
        }
        foreach (NamedTensor tensor in gradients.Tensors)
        {
            if (tensor.Name == BertGguf.TokenEmbeddings)
            {
                // Rows of tokens the sentence does not use get exactly nothing.
                Assert.All(Enumerable.Range(0, config.VocabularySize).Where(r => !tokens.Contains(r)), r => Assert.All(tensor.Values.AsSpan(r * hidden, hidden).ToArray(), v => Assert.Equal(0f, v)));
            }
            double[] values = weights[tensor.Name];
            double[] numeric = new double[values.Length];
            const double h = 1e-5;
            for (int i = 0; i < values.Length; i++)
            {
                double saved = values[i];
                values[i] = saved + h;
                double plus = Loss();
                values[i] = saved - h;
                double minus = Loss();
                values[i] = saved;
                numeric[i] = (plus - minus) / (2 * h);
            }
            double largest = Math.Max(numeric.Max(Math.Abs), GradientFloor), error = numeric.Select((v, i) => Math.Abs(v - tensor.Values[i])).Max();
            Assert.True(error / largest <= GradientTolerance, $"{tensor.Name}: relative error {error / largest:E2} (largest gradient {largest:E2})");
        }
    }

    /// <summary>The encoder as BertReference computes it, every value in double, weights by GGUF name.</summary>
    private static (double[] Embedding, double[] States) DoubleForward(BertConfig config, Dictionary<string, double[]> w, int[] tokens)
    {
        int n = tokens.Length, hidden = config.HiddenSize, heads = config.HeadCount, headSize = config.HeadSize;
        var x = new double[n][];
        for (int t = 0; t < n; t++)
        {
            x[t] = Enumerable.Range(0, hidden).Select(i => w[BertGguf.TokenEmbeddings][tokens[t] * hidden + i] + w[BertGguf.PositionEmbeddings][t * hidden + i]
                + w[BertGguf.TokenTypeEmbeddings][i]).ToArray();
            x[t] = LayerNorm(x[t], w[BertGguf.EmbeddingNormWeight], w[BertGguf.EmbeddingNormBias], config.LayerNormEpsilon);
        }
        for (int l = 0; l < config.LayerCount; l++)
        {
            double[][] Linear(string part, double[][] input) => input.Select(row => LinearRow(w[BertGguf.Block(l, part + ".weight")], w[BertGguf.Block(l, part + ".bias")], row)).ToArray();
            double[][] q = Linear("attn_q", x), k = Linear("attn_k", x), v = Linear("attn_v", x);
            double[][] context = Enumerable.Range(0, n).Select(_ => new double[hidden]).ToArray();
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < n; i++)
                {
                    double[] scores = Enumerable.Range(0, n).Select(j => Enumerable.Range(0, headSize).Sum(e => q[i][h * headSize + e] * k[j][h * headSize + e]) / Math.Sqrt(headSize)).ToArray();
                    double max = scores.Max();
                    double[] p = scores.Select(s => Math.Exp(s - max)).ToArray();
                    double sum = p.Sum();
                    for (int j = 0; j < n; j++)
                        for (int e = 0; e < headSize; e++) context[i][h * headSize + e] += p[j] / sum * v[j][h * headSize + e];
                }
            double[][] attended = Linear("attn_output", context);
            for (int t = 0; t < n; t++)
            {
                attended[t] = LayerNorm(attended[t].Select((a, i) => a + x[t][i]).ToArray(), w[BertGguf.Block(l, "attn_output_norm.weight")], w[BertGguf.Block(l, "attn_output_norm.bias")], config.LayerNormEpsilon);
            }
            double[][] up = Linear("ffn_up", attended).Select(row => row.Select(u => 0.5 * u * (1 + Erf(u / Math.Sqrt(2)))).ToArray()).ToArray();
            double[][] down = Linear("ffn_down", up);
            for (int t = 0; t < n; t++)
            {
                x[t] = LayerNorm(down[t].Select((a, i) => a + attended[t][i]).ToArray(), w[BertGguf.Block(l, "layer_output_norm.weight")], w[BertGguf.Block(l, "layer_output_norm.bias")], config.LayerNormEpsilon);
            }
        }
        double[] pooled = config.Pooling == Pooling.Cls ? x[0].ToArray() : Enumerable.Range(0, hidden).Select(i => x.Average(row => row[i])).ToArray();
        double norm = Math.Sqrt(pooled.Sum(p => p * p));
        return (pooled.Select(p => p / norm).ToArray(), x.SelectMany(row => row).ToArray());
    }

    private static double[] LinearRow(double[] weight, double[] bias, double[] input) =>
        bias.Select((b, r) => b + Enumerable.Range(0, input.Length).Sum(c => weight[r * input.Length + c] * input[c])).ToArray();

    private static double[] LayerNorm(double[] x, double[] weight, double[] bias, double epsilon)
    {
        double mean = x.Average(), variance = x.Select(v => (v - mean) * (v - mean)).Average();
        return x.Select((v, i) => (v - mean) / Math.Sqrt(variance + epsilon) * weight[i] + bias[i]).ToArray();
    }

    private static double Erf(double x) => BertReference.Erf(x);
}
