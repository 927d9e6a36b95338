using System.Text.Json;
using EdgeSlm.Intents.Features;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Models.Tokenizers;
using EdgeSlm.Testing;

namespace EdgeSlm.Intents.Tests.Features;

public sealed class SentenceFeaturesTests(ConvertedModels models)
{
    [Fact]
    public void Features_are_the_sentence_embedding_then_the_earlier_layers_pooled_alike()
    {
        Assert.Equal([3, 4], SentenceFeatures.PooledLayers(6));
        Assert.Equal([6, 8], SentenceFeatures.PooledLayers(12));
        Assert.Equal([1], SentenceFeatures.PooledLayers(2));
        Assert.Empty(SentenceFeatures.PooledLayers(1));

        string[] texts = ["turn on the kitchen lights", "what alarms do i have tomorrow", "mute"];
        using BertModel minilm = BertModel.Load(models.Path(BundledModel.MiniLM, QuantType.Q4_0));
        using var layered = new SentenceFeatures([minilm], threads: 1);
        using var last = new SentenceFeatures([minilm], threads: 1, earlierLayers: false);
        int hidden = minilm.Config.HiddenSize;
        Assert.Equal(hidden, last.Dimension);
        Assert.Equal(3 * hidden, layered.Dimension);
        Assert.NotEqual(last.Fingerprint, layered.Fingerprint);

        var withLayers = new float[texts.Length * layered.Dimension];
        var lastOnly = new float[texts.Length * last.Dimension];
        layered.Embed(texts, withLayers);
        last.Embed(texts, lastOnly);
        for (int i = 0; i < texts.Length; i++)
        {
            Span<float> row = withLayers.AsSpan(i * layered.Dimension, layered.Dimension);
            Assert.Equal(lastOnly.AsSpan(i * hidden, hidden), row[..hidden]);
            for (int block = 0; block < 3; block++)
            {
                Assert.Equal(1.0, System.Numerics.Tensors.TensorPrimitives.Norm<float>(row.Slice(block * hidden, hidden)), 4);
            }
            // Layer 3 is not the last layer: the blocks differ, though they describe the same sentence.
            double cosine = Cosine.Of(row[..hidden].ToArray(), row.Slice(hidden, hidden).ToArray());
            Assert.InRange(cosine, 0.1, 0.999);
        }

        // MiniLM pools by the mean, so pooling after its last layer is its sentence embedding; bad layer lists are refused.
        using var encoder = new BertEncoder(minilm);
        int[] ids = new WordPieceTokenizer(minilm.Vocabulary, minilm.Config.ContextLength).Encode(texts[0], out _);
        var embedding = new float[hidden];
        var pooled = new float[hidden];
        encoder.Encode(ids, [ids.Length], embedding, [minilm.Config.LayerCount], pooled);
        Assert.Equal(embedding, pooled);
        Assert.Throws<ArgumentOutOfRangeException>(() => encoder.Encode(ids, [ids.Length], embedding, [4, 3], new float[2 * hidden]));
        Assert.Throws<ArgumentOutOfRangeException>(() => encoder.Encode(ids, [ids.Length], embedding, [0], new float[hidden]));
        Assert.Throws<ArgumentException>(() => encoder.Encode(ids, [ids.Length], embedding, [3], new float[2 * hidden]));
    }

    [Fact]
    public void Two_encoders_give_each_encoders_features_side_by_side()
    {
        string[] texts = ["turn on the kitchen lights", "what's the weather like in Paris tomorrow", "set a timer for ten minutes", "hi",
            .. Enumerable.Range(0, 37).Select(i => $"play song number {i} from my favourite playlist")]; // 41: one full batch of 32 and a partial one
        using BertModel minilm = BertModel.Load(models.Path(BundledModel.MiniLM, QuantType.Q4_0));
        using BertModel arctic = BertModel.Load(models.Path(BundledModel.ArcticXs, QuantType.Q4_0));
        using var both = new SentenceFeatures([minilm, arctic], threads: 2);
        using var first = new SentenceFeatures([minilm], threads: 2);
        using var second = new SentenceFeatures([arctic], threads: 1);
        Assert.Equal(first.Dimension + second.Dimension, both.Dimension);

        var joined = new float[texts.Length * both.Dimension];
        var a = new float[texts.Length * first.Dimension];
        var b = new float[texts.Length * second.Dimension];
        both.Embed(texts, joined);
        first.Embed(texts, a);
        second.Embed(texts, b);
        for (int i = 0; i < texts.Length; i++)
        {
            Assert.Equal(a.AsSpan(i * first.Dimension, first.Dimension), joined.AsSpan(i * both.Dimension, first.Dimension));
            Assert.Equal(b.AsSpan(i * second.Dimension, second.Dimension), joined.AsSpan(i * both.Dimension + first.Dimension, second.Dimension));
        }

        // One sentence on its own gets the same features as inside a batch, to rounding.
        var single = new float[both.Dimension];
        both.Embed(texts[1], single);
        Assert.True(Cosine.Of(single, joined.AsSpan(both.Dimension, both.Dimension).ToArray()) > 0.9999);

        Assert.StartsWith(Path.GetFileName(minilm.Path) + ":", both.Fingerprint);
        Assert.Contains("+" + Path.GetFileName(arctic.Path) + ":", both.Fingerprint);
        using var reversed = new SentenceFeatures([arctic, minilm], threads: 1);
        Assert.NotEqual(both.Fingerprint, reversed.Fingerprint);
        Assert.Throws<ArgumentException>(() => both.Embed(texts, new float[texts.Length * first.Dimension]));
    }
}
