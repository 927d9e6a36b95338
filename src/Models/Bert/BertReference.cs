using EdgeSlm.Kernels.Activations;

namespace EdgeSlm.Models.Bert;

/// <summary>
/// The slow, obvious forward pass that <see cref="BertEncoder"/> is held to: one sentence at a time, weights
/// dequantized to float once, every sum a plain loop in double, erf from its series. It shares nothing with
/// the fast path but the weights, so a bug in the kernels, the batching or the float tricks shows as a difference.
/// </summary>
public sealed class BertReference
{
    private readonly BertModel _model;
    private readonly BertConfig _config;
    private readonly Dictionary<LinearWeights, float[]> _weights;

    public BertReference(BertModel model)
    {
        _model = model;
        _config = model.Config;
        _weights = model.LinearLayers.ToDictionary(l => l, l => l.Dequantize());
    }

    /// <summary>The pooled, L2-normalised embedding of one sentence's token ids.</summary>
    public float[] Encode(IReadOnlyList<int> tokens)
    {
        int n = tokens.Count, hidden = _config.HiddenSize;
        var x = new float[n][];
        for (int t = 0; t < n; t++)
        {
            x[t] = new float[hidden];
            _model.TokenEmbedding(tokens[t], x[t]);
            for (int i = 0; i < hidden; i++)
            {
                x[t][i] += _model.PositionEmbeddings[t * hidden + i] + _model.TokenTypeEmbeddings[i];
            }
            x[t] = LayerNorm(x[t], _model.EmbeddingNormWeight, _model.EmbeddingNormBias);
        }

        foreach (LayerWeights layer in _model.Layers)
        {
            float[][] q = x.Select(v => Linear(layer.Query, v)).ToArray();
            float[][] k = x.Select(v => Linear(layer.Key, v)).ToArray();
            float[][] v = x.Select(r => Linear(layer.Value, r)).ToArray();
            var context = new float[n][];
            for (int i = 0; i < n; i++)
            {
                context[i] = new float[hidden];
            }
            int headSize = _config.HeadSize;
            for (int h = 0; h < _config.HeadCount; h++)
            {
                for (int i = 0; i < n; i++)
                {
                    var scores = new double[n];
                    for (int j = 0; j < n; j++)
                    {
                        double dot = 0;
                        for (int d = 0; d < headSize; d++) dot += (double)q[i][h * headSize + d] * k[j][h * headSize + d];
                        scores[j] = dot / Math.Sqrt(headSize);
                    }
                    double max = scores.Max(), sum = 0;
                    for (int j = 0; j < n; j++) sum += scores[j] = Math.Exp(scores[j] - max);
                    for (int d = 0; d < headSize; d++)
                    {
                        double value = 0;
                        for (int j = 0; j < n; j++) value += scores[j] / sum * v[j][h * headSize + d];
                        context[i][h * headSize + d] = (float)value;
                    }
                }
            }
            for (int t = 0; t < n; t++)
            {
                float[] attention = Linear(layer.AttentionOutput, context[t]);
                x[t] = LayerNorm(Add(x[t], attention), layer.AttentionNormWeight, layer.AttentionNormBias);
                float[] up = Linear(layer.FeedForwardUp, x[t]).Select(Gelu).ToArray();
                x[t] = LayerNorm(Add(x[t], Linear(layer.FeedForwardDown, up)), layer.OutputNormWeight, layer.OutputNormBias);
            }
        }

        var pooled = new double[hidden];
        if (_config.Pooling == Pooling.Cls)
        {
            for (int i = 0; i < hidden; i++) pooled[i] = x[0][i];
        }
        else
        {
            for (int t = 0; t < n; t++)
                for (int i = 0; i < hidden; i++) pooled[i] += x[t][i] / (double)n;
        }
        double norm = Math.Sqrt(pooled.Sum(p => p * p));
        return pooled.Select(p => (float)(p / norm)).ToArray();
    }

    private float[] Linear(LinearWeights layer, float[] input)
    {
        float[] w = _weights[layer];
        var output = new float[layer.Rows];
        for (int r = 0; r < layer.Rows; r++)
        {
            double sum = layer.Bias[r];
            for (int c = 0; c < layer.Columns; c++) sum += (double)w[r * layer.Columns + c] * input[c];
            output[r] = (float)sum;
        }
        return output;
    }

    private float[] LayerNorm(float[] x, float[] weight, float[] bias)
    {
        double mean = x.Average(v => (double)v);
        double variance = x.Average(v => (v - mean) * (v - mean));
        double scale = 1 / Math.Sqrt(variance + _config.LayerNormEpsilon);
        return x.Select((v, i) => (float)((v - mean) * scale * weight[i] + bias[i])).ToArray();
    }

    private static float[] Add(float[] a, float[] b) => a.Select((v, i) => v + b[i]).ToArray();

    private static float Gelu(float x) => (float)(0.5 * x * (1 + Erf(x / Math.Sqrt(2))));

    /// <summary>erf from its Maclaurin series near 0 and from the continued fraction of erfc further out.</summary>
    public static double Erf(double x)
    {
        double a = Math.Abs(x);
        double result;
        if (a < 3)
        {
            double term = a, sum = a;
            for (int n = 1; n < 100 && Math.Abs(term) > 1e-17 * Math.Abs(sum); n++)
            {
                term *= -a * a / n;
                sum += term / (2 * n + 1);
            }
            result = 2 / Math.Sqrt(Math.PI) * sum;
        }
        else
        {
            // erfc(a) = exp(-a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + 2/(a + ...))))), evaluated from the tail.
            double fraction = a;
            for (int k = 60; k >= 1; k--)
            {
                fraction = a + k / 2.0 / fraction;
            }
            result = 1 - Math.Exp(-a * a) / Math.Sqrt(Math.PI) / fraction;
        }
        return x < 0 ? -result : result;
    }
}
