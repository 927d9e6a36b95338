using EdgeSlm.Intents.Recognition;

namespace EdgeSlm.Intents.LanguageModel;

/// <summary>The language model after the engine: it decides what the templates and the classifier did not recognise.</summary>
public static class SlmFallback
{
    /// <summary>
    /// Replaces each unrecognised classifier answer in <paramref name="results"/> with the model's (source
    /// <see cref="IntentSource.Slm"/>), until <paramref name="budget"/> has passed: from then on the classifier's
    /// answers stand. Template answers are never replaced. Returns how many utterances the budget left to the classifier.
    /// </summary>
    public static int Apply(IntentResult[] results, IReadOnlyList<string> texts, IReadOnlyList<IReadOnlyCollection<string>?>? intentFilters,
        SlmRecognizer recognizer, SlmDeadline budget)
    {
        ArgumentNullException.ThrowIfNull(results);
        ArgumentNullException.ThrowIfNull(texts);
        ArgumentNullException.ThrowIfNull(recognizer);
        int timedOut = 0;
        for (int i = 0; i < results.Length; i++)
        {
            IntentResult result = results[i];
            if (result.Source != IntentSource.Classifier || result.Recognized)
            {
                continue;
            }
            SlmAnswer answer = recognizer.Recognize(texts[i], intentFilters?[i], budget);
            if (answer.TimedOut)
            {
                timedOut++;
                continue;
            }
            results[i] = new IntentResult(texts[i], answer.Intent, answer.Confidence, answer.Slots, ExactMatch: false, result.Truncated || answer.Truncated)
            {
                Source = IntentSource.Slm,
            };
        }
        return timedOut;
    }
}
