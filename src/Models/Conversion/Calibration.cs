using System.Numerics.Tensors;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Onnx;
using EdgeSlm.Models.Tokenizers;

namespace EdgeSlm.Models.Conversion;

/// <summary>
/// Runs calibration sentences through a model and measures, per quantized linear layer, what the converter needs of
/// its inputs: the columns whose activations are largest (kept in float at run time, <see cref="BertEncoder"/>; in
/// BERT models they are the same few columns for every input, large LayerNorm gains and a few dominant GELU units,
/// so a small set of sentences finds them), and on request the Gram matrix XᵀX of the inputs, which GPTQ needs
/// (<see cref="GptqQuantizer"/>). The sentences are our own, not taken from any evaluation data: 24 written out
/// here and <see cref="CalibrationText"/>'s expansions.
/// </summary>
internal static class Calibration
{
    public const int ColumnsPerLayer = 4;

    private static readonly string[] Sentences =
    [
        "turn on the lights in the living room",
        "switch off the kitchen lamp please",
        "set the bedroom temperature to twenty one degrees",
        "what's the weather like tomorrow morning",
        "play some relaxing jazz in the study",
        "set a timer for ten minutes",
        "how much time is left on the pasta timer",
        "is the garage door open",
        "dim the hallway lights to thirty percent",
        "wake me up at half past six on weekdays",
        "add milk and eggs to my shopping list",
        "what's on my calendar this afternoon",
        "the motion sensor in the basement was triggered at 3 am",
        "front door unlocked by the keypad",
        "humidity in the bathroom is above seventy percent",
        "can you tell me a joke",
        "never mind, cancel that",
        "how long does it take to drive to the airport",
        "remind me to call mom when I get home",
        "what is the capital of Australia?",
        "Stop the music and close the blinds.",
        "I'd like to book a table for four at an Italian restaurant tonight",
        "rate this book five out of six stars",
        "thanks, that's all for now",
    ];

    /// <summary>What calibration measured: outlier columns (largest first) and, if asked for, Gram matrices, by weight tensor name.</summary>
    public sealed record Statistics(Dictionary<string, int[]> Outliers, Dictionary<string, float[]>? Gram);

    /// <summary>
    /// Runs every calibration sentence through <paramref name="model"/> and measures each quantized linear layer's
    /// inputs. With <paramref name="gram"/>, also XᵀX (columns × columns); the query, key and value
    /// projections of a layer read the same input and share one matrix.
    /// </summary>
    public static Statistics Measure(BertModel model, bool gram)
    {
        var tokenizer = new WordPieceTokenizer(model.Vocabulary, model.Config.ContextLength);
        using var encoder = new BertEncoder(model);
        LinearWeights[] layers = model.LinearLayers.Where(l => l.Quantized is not null).ToArray();
        var maxima = layers.ToDictionary(l => l.Name, l => new float[l.Columns]);
        var grams = gram ? new Dictionary<string, GramAccumulator>() : null;
        encoder.Observe((weights, input, tokens) =>
        {
            if (!maxima.TryGetValue(weights.Name, out float[]? max)) return;
            int columns = weights.Columns;
            for (int t = 0; t < tokens; t++)
                for (int c = 0; c < columns; c++)
                    max[c] = MathF.Max(max[c], MathF.Abs(input[t * columns + c]));
            if (grams is null || SharedInput(weights.Name) != weights.Name) return;
            if (!grams.TryGetValue(weights.Name, out GramAccumulator? accumulator))
            {
                grams[weights.Name] = accumulator = new GramAccumulator(columns);
            }
            accumulator.Add(input[..(tokens * columns)]);
        });
        var embedding = new float[model.Config.HiddenSize];
        foreach (string sentence in Sentences.Concat(CalibrationText.Sentences()))
        {
            int[] ids = tokenizer.Encode(sentence);
            encoder.Encode(ids, [ids.Length], embedding);
        }
        Dictionary<string, int[]> outliers = maxima.ToDictionary(
            pair => pair.Key,
            pair => Enumerable.Range(0, pair.Value.Length).OrderByDescending(c => pair.Value[c]).Take(ColumnsPerLayer).ToArray());
        if (grams is null)
        {
            return new Statistics(outliers, null);
        }
        var shared = new Dictionary<string, float[]>();
        foreach ((string tensor, GramAccumulator accumulator) in grams)
        {
            float[] g = accumulator.Result();
            if (!float.IsFinite(TensorPrimitives.Sum(g))) // a NaN or infinity anywhere shows in the sum
            {
                throw new Onnx.OnnxFormatException($"the inputs of '{tensor}' grow out of float range on the calibration sentences: the model's weights are not usable");
            }
            shared[tensor] = g;
        }
        var byTensor = new Dictionary<string, float[]>();
        foreach (LinearWeights layer in layers)
        {
            if (shared.TryGetValue(SharedInput(layer.Name), out float[]? g)) byTensor[layer.Name] = g;
        }
        return new Statistics(outliers, byTensor);
    }

    // blk.N.attn_k and blk.N.attn_v read blk.N.attn_q's input.
    private static string SharedInput(string tensor) =>
        tensor.Replace(".attn_k.", ".attn_q.", StringComparison.Ordinal).Replace(".attn_v.", ".attn_q.", StringComparison.Ordinal);

    /// <summary>
    /// XᵀX of the rows added, in float: rows are buffered and added a batch at a time, each Gram row updated by the
    /// whole batch while it is in cache (one pass over a 1536 × 1536 matrix per token would be memory-bound).
    /// </summary>
    private sealed class GramAccumulator(int columns)
    {
        private const int BatchRows = 256;
        private readonly float[] _gram = new float[columns * columns]; // upper triangle, row a from column a
        private readonly float[] _batch = new float[BatchRows * columns];
        private int _rows;

        public void Add(ReadOnlySpan<float> rows)
        {
            for (int r = 0; r < rows.Length / columns; r++)
            {
                rows.Slice(r * columns, columns).CopyTo(_batch.AsSpan(_rows * columns, columns));
                if (++_rows == BatchRows) Flush();
            }
        }

        /// <summary>The whole symmetric matrix (the lower triangle filled in place); the accumulator is spent.</summary>
        public float[] Result()
        {
            Flush();
            for (int a = 0; a < columns; a++)
            {
                for (int b = a + 1; b < columns; b++)
                {
                    _gram[b * columns + a] = _gram[a * columns + b];
                }
            }
            return _gram;
        }

        private void Flush()
        {
            for (int a = 0; a < columns; a++)
            {
                Span<float> target = _gram.AsSpan(a * columns + a, columns - a);
                for (int r = 0; r < _rows; r++)
                {
                    ReadOnlySpan<float> x = _batch.AsSpan(r * columns, columns);
                    if (x[a] != 0f) TensorPrimitives.MultiplyAdd(x[a..], x[a], target, target);
                }
            }
            _rows = 0;
        }
    }
}
