using System.Numerics.Tensors;
using EdgeSlm.Intents.Examples;

namespace EdgeSlm.Intents.Classifiers;

/// <summary>
/// The trained classifier of the intent engine: a <see cref="SoftmaxClassifier"/> on the encoders' sentence
/// features and, beside it, a <see cref="LexicalClassifier"/> on the utterance's words, combined as a weighted
/// product of experts: p(class) ∝ p_embedding(class) · p_words(class)^<see cref="LexicalWeight"/>. The weight is
/// chosen on held-out examples (0 turns the words off). Same classes, same order, in both.
/// </summary>
public sealed class IntentHead
{
    public IntentHead(SoftmaxClassifier embedding, LexicalClassifier? lexical, float lexicalWeight)
    {
        ArgumentNullException.ThrowIfNull(embedding);
        if (lexical is not null && !lexical.Classes.SequenceEqual(embedding.Classes, StringComparer.Ordinal))
        {
            throw new ArgumentException("the lexical and embedding classifiers must have the same classes in the same order");
        }
        if (!(lexicalWeight >= 0 && float.IsFinite(lexicalWeight)) || (lexical is null && lexicalWeight != 0))
        {
            throw new ArgumentException($"lexical weight {lexicalWeight} needs a lexical classifier and must be finite and not negative");
        }
        Embedding = embedding;
        Lexical = lexical;
        LexicalWeight = lexicalWeight;
    }

    public SoftmaxClassifier Embedding { get; }
    public LexicalClassifier? Lexical { get; }
    public float LexicalWeight { get; }
    public IReadOnlyList<string> Classes => Embedding.Classes;

    /// <summary>Class probabilities of one utterance, given its text and its sentence features.</summary>
    public void Predict(ReadOnlySpan<float> features, string text, Span<float> probabilities)
    {
        Embedding.Predict(features, probabilities);
        if (Lexical is null || LexicalWeight == 0)
        {
            return;
        }
        int k = Classes.Count;
        Span<float> scores = probabilities[..k];
        Span<float> words = k <= 256 ? stackalloc float[k] : new float[k];
        Lexical.LogProbabilities(text, words);
        Combine(scores, words, LexicalWeight, scores);
    }

    /// <summary>
    /// p(class) ∝ p_embedding(class) · p_words(class)^<paramref name="weight"/>, from the embedding classifier's
    /// probabilities and the words' log-probabilities (<paramref name="result"/> may be <paramref name="embedding"/>).
    /// </summary>
    internal static void Combine(ReadOnlySpan<float> embedding, ReadOnlySpan<float> words, float weight, Span<float> result)
    {
        if (weight == 0)
        {
            embedding.CopyTo(result);
            return;
        }
        for (int c = 0; c < embedding.Length; c++)
        {
            result[c] = MathF.Log(MathF.Max(embedding[c], 1e-30f)) + weight * words[c];
        }
        StableSoftMax.InPlace(result[..embedding.Length]);
    }

    /// <summary>The class, or "oos" when the classifier is not confident enough (or says out-of-scope itself).</summary>
    public string Decide(ReadOnlySpan<float> features, string text, Span<float> probabilities, double threshold)
    {
        Predict(features, text, probabilities);
        int best = TensorPrimitives.IndexOfMax(probabilities[..Classes.Count]);
        return probabilities[best] < threshold ? IntentExample.OutOfScope : Classes[best];
    }
}

/// <summary>
/// Softmax that cannot overflow: the largest logit is subtracted first (TensorPrimitives.SoftMax exponentiates
/// the logits as they are, and a logit above 88 gives infinity and then NaN probabilities).
/// </summary>
internal static class StableSoftMax
{
    public static void InPlace(Span<float> logits)
    {
        TensorPrimitives.Subtract(logits, TensorPrimitives.Max(logits), logits);
        TensorPrimitives.SoftMax(logits, logits);
    }
}
