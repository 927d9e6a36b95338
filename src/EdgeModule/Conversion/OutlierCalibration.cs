using EdgeSlm.EdgeModule.Model;

namespace EdgeSlm.EdgeModule.Conversion;

/// <summary>
/// Finds, for every quantized linear layer, the input columns whose activations are largest on a fixed set of
/// calibration sentences: they are kept in float at run time (<see cref="BertEncoder"/>). In BERT models they
/// are the same few columns for every input (large LayerNorm gains, a few dominant GELU units), so a small
/// calibration set finds them. The sentences are our own, not taken from any evaluation data.
/// </summary>
internal static class OutlierCalibration
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

    /// <summary>Column indices per linear weight tensor name, largest first.</summary>
    public static Dictionary<string, int[]> Find(string modelPath)
    {
        using BertModel model = BertModel.Load(modelPath);
        return Find(model);
    }

    /// <summary>Column indices per linear weight tensor name, largest first.</summary>
    public static Dictionary<string, int[]> Find(BertModel model)
    {
        var tokenizer = new WordPieceTokenizer(model.Vocabulary, model.Config.ContextLength);
        using var encoder = new BertEncoder(model);
        var maxima = model.LinearLayers.Where(l => l.Quantized is not null).ToDictionary(l => l.Name, l => new float[l.Columns]);
        encoder.Observe((weights, input, tokens) =>
        {
            if (!maxima.TryGetValue(weights.Name, out float[]? max)) return;
            for (int t = 0; t < tokens; t++)
                for (int c = 0; c < weights.Columns; c++)
                    max[c] = MathF.Max(max[c], MathF.Abs(input[t * weights.Columns + c]));
        });
        var embedding = new float[model.Config.HiddenSize];
        foreach (string sentence in Sentences)
        {
            int[] ids = tokenizer.Encode(sentence);
            encoder.Encode(ids, [ids.Length], embedding);
        }
        return maxima.ToDictionary(
            pair => pair.Key,
            pair => Enumerable.Range(0, pair.Value.Length).OrderByDescending(c => pair.Value[c]).Take(ColumnsPerLayer).ToArray());
    }
}
