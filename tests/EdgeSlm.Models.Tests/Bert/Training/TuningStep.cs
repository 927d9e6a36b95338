using EdgeSlm.Models.Bert.Training;
using EdgeSlm.Models.Tokenizers;

namespace EdgeSlm.Models.Tests.Bert.Training;

/// <summary>Weights moved by a real fine-tuning step, for tests of what is written from them.</summary>
internal static class TuningStep
{
    /// <summary>One AdamW step on a real gradient (two sentences, a random direction on the embedding).</summary>
    public static void Once(BertParameters parameters, string[] vocabulary, float learningRate)
    {
        var encoder = new TrainableEncoder(parameters);
        var activations = new TrainingActivations(parameters.Config, 64);
        var gradients = new BertParameters(parameters.Config);
        var tokenizer = new WordPieceTokenizer(vocabulary, parameters.Config.ContextLength);
        var random = new Random(3);
        var touched = new HashSet<int>();
        foreach (string sentence in new[] { "turn on the kitchen light", "what is the weather tomorrow" })
        {
            int[] ids = tokenizer.Encode(sentence);
            encoder.Forward(ids, activations);
            float[] direction = Enumerable.Range(0, parameters.Config.HiddenSize).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
            encoder.Backward(activations, direction, [], gradients);
            touched.UnionWith(ids);
        }
        new AdamW(parameters.Config).Step(parameters, gradients, touched, learningRate);
    }
}
